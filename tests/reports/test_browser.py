"""The headless-Chromium check sees what a reader would: script errors, images that do not decode, requests
that leave the file. (The report itself is checked in tests/reports/test_html.py.)"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from reports.browser import BrowserError, check_report, open_page
from tests.reports.chromium import needs_chromium

pytestmark = needs_chromium


def _png(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_broken_page_is_seen_as_broken(tmp_path: Path):
    page = tmp_path / "bad.html"
    page.write_text(f"""<!DOCTYPE html><html><head><title>bad</title></head><body>
<h2 id='one'>one</h2><img alt='good' src='data:image/png;base64,{_png(7, 3)}'>
<h2 id='two'>two</h2><img alt='corrupt' src='data:image/png;base64,iVBORw0KGgoAAAA'>
<img alt='remote' src='http://example.invalid/x.png'>
<script>console.error('boom', 42); undefinedFunction();</script></body></html>""")
    check = check_report(page)
    assert check.title == "bad" and check.sections == ["one", "two"]
    assert [(i["alt"], i["decoded"], i["width"], i["height"]) for i in check.images] == [
        ("good", True, 7, 3), ("corrupt", False, 0, 0), ("remote", False, 0, 0)]
    assert "console.error: boom 42" in check.errors
    assert any(e.startswith("uncaught: ReferenceError: undefinedFunction is not defined") for e in check.errors)
    assert check.requests == ["http://example.invalid/x.png"] and not check.ok


def test_a_clean_page_passes_and_screenshots_are_png(tmp_path: Path):
    page = tmp_path / "ok.html"
    page.write_text(f"<!DOCTYPE html><title>ok</title><h2 id='a'>a</h2><div id='box' style='width:50px;height:20px'>"
                    f"<img alt='x' src='data:image/png;base64,{_png(5, 5)}'></div>")
    check = check_report(page)
    assert check.ok and check.errors == [] and check.requests == []
    with open_page(page, width=400, height=300) as p:
        whole, part = p.screenshot(), p.screenshot("#box", margin=0)
        with pytest.raises(BrowserError, match="nothing on the page matches '#missing'"):
            p.hover("#missing")
    assert Image.open(io.BytesIO(whole)).size == (400, 300)
    assert Image.open(io.BytesIO(part)).size == (50, 20)
