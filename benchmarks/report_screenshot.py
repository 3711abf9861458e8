"""Open the report of one or more run folders in headless Chromium, check it the way the browser test
does (no console error, no request leaving the file, every image decoded, every section present),
and keep a screenshot of its interactive fronts, with one front point hovered, for the README.

Run from the repository root after a search (Chromium from Debian's ``chromium`` package)::

    .venv/bin/dynnas search --device jetson-orin --seed 0 --top 3 --out runs/demo-jetson-orin   # = make demo
    .venv/bin/python benchmarks/report_screenshot.py runs/demo-jetson-orin

writes ``benchmarks/results/report_demo.png`` (palette PNG) and ``report_demo.json`` (the check).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from reports.browser import check_report, open_page
from reports.html import write_report
from reports.run_folder import jsonable
from supernet.checkpoint import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=RESULTS / "report_demo.png")
    ap.add_argument("--width", type=int, default=1240, help="browser window width, px")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        page_path = write_report(args.run_dirs, Path(tmp) / "report.html")  # the current code's report
        t0 = time.perf_counter()
        check = check_report(page_path, width=args.width)
        with open_page(page_path, width=args.width, height=1000) as page:
            # the first front point that no exported star covers, hovered
            page.evaluate("(() => {const stars = new Set(Array.from(document.querySelectorAll('.exp'))"
                          ".map(e => e.getAttribute('data-sid'))); const pts = Array.from("
                          "document.querySelectorAll('.explore circle.fr'));"
                          "const e = pts.find(e => !stars.has(e.getAttribute('data-sid'))) || pts[0];"
                          "e.id = 'shot-target';})()")
            page.hover("#shot-target")
            tip = page.evaluate("document.getElementById('tip').textContent")
            x, y, w, h = page.evaluate(
                "(() => {const a = document.getElementById('explore').getBoundingClientRect();"
                "const b = document.querySelector('.explore').getBoundingClientRect();"
                "const t = document.getElementById('tip').getBoundingClientRect();"
                "const bottom = Math.max(b.bottom, t.bottom);"
                "return [a.left + scrollX - 8, a.top + scrollY - 8, a.width + 16, bottom - a.top + 16];})()")
            png = page.screenshot(clip=(x, y, w, h))
        seconds = time.perf_counter() - t0
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, format="PNG", optimize=True)
    doc = {"runs": [str(d) for d in args.run_dirs], "ok": check.ok, "errors": check.errors,
           "requests": check.requests, "images": check.images, "sections": check.sections,
           "hovered_tooltip": tip, "screenshot": args.out.name, "screenshot_px": list(image.size),
           "screenshot_bytes": args.out.stat().st_size, "browser_seconds": round(seconds, 2),
           "command": "python benchmarks/report_screenshot.py " + " ".join(map(str, args.run_dirs))}
    write_json(args.out.with_suffix(".json"), jsonable(doc))
    print(f"{'ok' if check.ok else 'PROBLEMS'}: {len(check.images)} images, sections {', '.join(check.sections)}; "
          f"errors {check.errors or 'none'}; wrote {args.out} ({doc['screenshot_bytes'] // 1024} KiB)")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
