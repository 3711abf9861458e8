"""The report's interactive fronts: inline SVG, one point per candidate, and a few lines of inline JS
that show a point's arch string and figures on hover and mark the same subnet in every run's panel.

No library and no network: everything is in the page. Each point carries ``data-sid`` (its
subnet id) and ``data-tip`` (the tooltip text); without JavaScript the chart is still a drawing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from reports.plots import COLORS
from reports.tokens import TokenSchedule
from reports.view import RunView
from supernet.space import arch_is_dynamic

W, H = 560, 380  # SVG user units
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 16, 46

CSS = """
.explore{display:flex;flex-wrap:wrap;gap:1.2em}.explore figure{margin:0;flex:1 1 480px;max-width:600px}
.explore svg{width:100%;height:auto;border:1px solid #eee;background:#fff}
.explore figcaption{font-size:.85em;color:#444}.explore .ax{stroke:#999;stroke-width:1}
.explore .grid{stroke:#eee;stroke-width:1}.explore text{font-size:11px;fill:#444}
.explore [data-tip]{cursor:pointer}.explore .ev{opacity:.35}.explore .fr{stroke:#fff;stroke-width:.8}
.explore .shared{stroke:#000;stroke-width:1.6}.explore .hl{stroke:#d00 !important;stroke-width:3 !important;opacity:1}
.legend span{display:inline-block;margin-right:1em;font-size:.85em}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:50%}
#tip{position:absolute;display:none;pointer-events:none;background:#fffff0;border:1px solid #888;padding:4px 7px;
font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre;box-shadow:2px 2px 6px rgba(0,0,0,.15);z-index:9}
"""

# Show the hovered point's data-tip next to the pointer; mark every point of the same subnet (all panels).
JS = """
(function(){
  var tip=document.getElementById('tip');
  function marks(sid,on){if(!sid)return;document.querySelectorAll('[data-sid="'+sid+'"]').forEach(function(n){
    n.classList.toggle('hl',on);});}
  function place(e){tip.style.left=(e.pageX+14)+'px';tip.style.top=(e.pageY+14)+'px';}
  document.addEventListener('mouseover',function(e){var t=e.target.closest?e.target.closest('[data-tip]'):null;
    if(!t)return;tip.textContent=t.getAttribute('data-tip');tip.style.display='block';place(e);
    marks(t.getAttribute('data-sid'),true);});
  document.addEventListener('mouseout',function(e){var t=e.target.closest?e.target.closest('[data-tip]'):null;
    if(!t)return;tip.style.display='none';marks(t.getAttribute('data-sid'),false);});
  document.addEventListener('mousemove',function(e){if(tip.style.display==='block')place(e);});
})();
"""


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 × 10^k) within ``[lo, hi]``."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int(math.floor((hi - first) / step + 1e-9)) + 1)]


class _Scale:
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        def lim(v: np.ndarray) -> tuple[float, float]:
            v = v[np.isfinite(v)]
            lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
            pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1e-9)
            return lo - pad, hi + pad

        self.x0, self.x1 = lim(x)
        self.y0, self.y1 = lim(y)

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return H - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _rates(cell: object) -> str:
    text = str(cell)
    return "" if text in ("", "nan", "None") else ", ".join(f"{float(p):.2f}" for p in text.split(";"))


def candidate_tip(row: pd.Series, device: str, *, role: str, tokens: TokenSchedule | None = None) -> str:
    """The tooltip text of one evaluated candidate (a row of evaluations.csv or pareto.csv); with ``tokens``
    (a run with token reduction) also the tokens entering each block, e.g. ``tokens per block 17→13 (ToMe)``."""
    lines = [str(row["arch"]), f"{role} · {row['algorithm']} · id {row['subnet_id']}",
             f"accuracy {100 * float(row['accuracy']):.2f} %",
             f"latency {float(row['latency_ms']):.5g} ms on {device}",
             f"MACs {float(row['macs']) / 1e6:.4g} M"]
    if tokens is not None:
        lines.append(f"tokens per block {tokens.text(str(row['arch']))}")
    static, worst = row.get("static_accuracy"), row.get("worst_latency_ms")
    rates = _rates(row.get("exit_rates", ""))
    arch = str(row["arch"])
    dynamic = arch_is_dynamic(arch)
    if dynamic and static is not None and np.isfinite(float(static)):
        lines.append(f"static accuracy {100 * float(static):.2f} %, worst case {float(worst):.5g} ms")
    if dynamic and rates:
        lines.append(f"exit rates {rates}")
    return "\n".join(lines)


def _circle(x: float, y: float, r: float, color: str, cls: str, sid: str, tip: str) -> str:
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}" class="{cls}" data-sid="{_attr(sid)}" '
            f'data-tip="{_attr(tip)}"/>')


def _star(x: float, y: float, r: float) -> str:
    pts = []
    for k in range(10):
        a = math.pi / 2 + k * math.pi / 5
        rr = r if k % 2 == 0 else r * 0.45
        pts.append(f"{x + rr * math.cos(a):.1f},{y - rr * math.sin(a):.1f}")
    return " ".join(pts)


def _axes(s: _Scale, device: str) -> list[str]:
    out = [f'<line class="ax" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
           f'<line class="ax" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>']
    for t in nice_ticks(s.x0, s.x1):
        x = s.x(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}"/>'
                   f'<text x="{x:.1f}" y="{H - BOTTOM + 15}" text-anchor="middle">{t:.4g}</text>')
    for t in nice_ticks(s.y0, s.y1):
        y = s.y(t)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{100 * t:.4g}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 10}" text-anchor="middle">predicted latency on '
               f'{html.escape(device)} (ms)</text>')
    out.append(f'<text transform="translate(14 {(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">'
               "predicted accuracy (%)</text>")
    return out


def front_svg(view: RunView, algorithms: list[str], shared: Iterable[str] = ()) -> str:
    """One run's candidates, fronts, baselines and exported subnets as an inline SVG with hover tips.

    ``shared``: subnet ids that are also on another run's combined front (drawn with a black ring).
    """
    shared = set(shared)
    tokens = TokenSchedule.of(view.run)
    ev = view.evaluations.drop_duplicates(["algorithm", "subnet_id"])
    front = view.pareto
    base = view.baselines
    exp = [(e.arch.arch, e.arch.subnet_id, e.verify) for e in view.exported]
    exp_tokens = [f"\ntokens per block {tokens.exported_text(e)}" if tokens is not None else "" for e in view.exported]
    xs = np.concatenate([ev["latency_ms"].to_numpy(float), base["latency_ms"].to_numpy(float),
                         np.asarray([v.predicted_latency_ms for *_, v in exp], float)])
    ys = np.concatenate([ev["accuracy"].to_numpy(float), base["accuracy"].to_numpy(float),
                         np.asarray([v.predicted_accuracy for *_, v in exp], float)])
    s = _Scale(xs, ys)
    color = {a: COLORS[i % len(COLORS)] for i, a in enumerate(algorithms)}
    out = [f'<svg viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg" role="img" '
           f'aria-label="accuracy against latency, {_attr(view.title)}">', *_axes(s, view.device)]
    for row in ev.itertuples(index=False):  # every distinct candidate, faint
        r = row._asdict()
        out.append(_circle(s.x(r["latency_ms"]), s.y(r["accuracy"]), 2.2, color.get(str(r["algorithm"]), "#777"),
                           "ev", str(r["subnet_id"]), candidate_tip(pd.Series(r), view.device, role="candidate", tokens=tokens)))
    for alg, fr in front.groupby("algorithm", sort=True):
        fr = fr.sort_values("latency_ms")
        c = color.get(str(alg), "#777")
        pts = []
        for x, y in zip(fr["latency_ms"], fr["accuracy"], strict=True):
            if pts:
                pts.append(f"{s.x(x):.1f},{float(pts[-1].split(',')[1]):.1f}")  # a step: along, then up
            pts.append(f"{s.x(x):.1f},{s.y(y):.1f}")
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{c}" stroke-width="1.4"/>')
        for row in fr.itertuples(index=False):
            r = row._asdict()
            sid = str(r["subnet_id"])
            cls = "fr shared" if sid in shared else "fr"
            out.append(_circle(s.x(r["latency_ms"]), s.y(r["accuracy"]), 4, c, cls, sid,
                               candidate_tip(pd.Series(r), view.device, role="on the front", tokens=tokens)))
    for b in base.itertuples(index=False):
        x, y = s.x(float(b.latency_ms)), s.y(float(b.accuracy))
        tip = (f"{b.arch}\nuniform width α = {float(b.width):g}\naccuracy {100 * float(b.accuracy):.2f} %\n"
               f"latency {float(b.latency_ms):.5g} ms on {view.device}\nMACs {float(b.macs) / 1e6:.4g} M")
        out.append(f'<rect x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" transform="rotate(45 {x:.1f} '
                   f'{y:.1f})" fill="#111" class="base" data-tip="{_attr(tip)}"/>')
    for (arch, sid, v), token_line in zip(exp, exp_tokens, strict=True):
        x, y = s.x(v.predicted_latency_ms), s.y(v.predicted_accuracy)
        host = v.host_latency_relative.at_calibration_speed_ms if v.host_latency_relative else v.host_latency_ms.median_ms
        tip = (f"{arch}\nexported · id {sid}\npredicted accuracy {100 * v.predicted_accuracy:.2f} %, "
               f"ONNX {100 * v.onnx_accuracy:.2f} % ({v.eval_set})\npredicted {v.predicted_latency_ms:.5g} ms on "
               f"{view.device}\nhost: predicted {v.predicted_host_latency_ms:.4g} ms, measured {host:.4g} ms{token_line}")
        out.append(f'<polygon points="{_star(x, y, 9)}" fill="gold" stroke="#000" stroke-width="1" class="exp" '
                   f'data-sid="{_attr(sid)}" data-tip="{_attr(tip)}"/>')
    out.append("</svg>")
    return "".join(out)


def explore_section(views: list[RunView]) -> str:
    """The interactive fronts of every run, side by side, with a legend and the tooltip element."""
    algorithms = sorted({str(a) for v in views for a in v.evaluations["algorithm"]})
    fronts = [set(v.pareto.loc[v.pareto["combined"], "subnet_id"].astype(str)) for v in views]
    figures = []
    for i, v in enumerate(views):
        others = set().union(*(f for j, f in enumerate(fronts) if j != i)) if len(views) > 1 else set()
        figures.append(f"<figure>{front_svg(v, algorithms, fronts[i] & others)}"
                       f"<figcaption>{html.escape(v.title)}: {len(v.evaluations)} evaluations</figcaption></figure>")
    legend = "".join(f'<span><i style="background:{COLORS[i % len(COLORS)]}"></i>{html.escape(a)}</span>'
                     for i, a in enumerate(algorithms))
    legend += "<span>◆ uniform width α</span><span>★ exported</span>"
    if len(views) > 1:
        legend += "<span>○ black ring: also on another run's combined front</span>"
    return (f"<div class='legend'>{legend}</div><div class='explore'>{''.join(figures)}</div>"
            "<div id='tip' role='tooltip'></div>")
