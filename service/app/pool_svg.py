"""The picture of a plan's pool utilization: one bar per pool, devices used (stacked by tier) of the up
devices, drawn on the server as an inline SVG (no script, no outside asset, readable with the network cut)."""

from __future__ import annotations

from html import escape

from service.app.plan_view import TIERS, PoolUse

_ROW = 26
_LABEL_W = 250
_BAR_W = 420
_TOP = 30


def pool_svg(pools: list[PoolUse]) -> str:
    """Bars scaled to the largest pool, so pool sizes compare at a glance; down devices hatched grey."""
    largest = max((p.devices for p in pools), default=0) or 1
    height = _TOP + _ROW * max(1, len(pools)) + 10
    width = _LABEL_W + _BAR_W + 110
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="pools" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-labelledby="pools-title">'),
           '<title id="pools-title">Devices used of available, per pool</title>']
    x = _LABEL_W
    for i, tier in enumerate(TIERS):          # the legend
        lx = x + i * 110
        out.append(f'<rect x="{lx}" y="6" width="12" height="12" class="tier-{tier}"/>'
                   f'<text x="{lx + 16}" y="16" class="legend">{tier}</text>')
    out.append(f'<rect x="{x + 330}" y="6" width="12" height="12" class="down"/>'
               f'<text x="{x + 346}" y="16" class="legend">down</text>')
    if not pools:
        out.append(f'<text x="4" y="{_TOP + 16}" class="label">no pools in this fleet</text>')
    for row, p in enumerate(pools):
        y = _TOP + row * _ROW
        scale = _BAR_W / largest
        label = escape(f"{p.region} / {p.cluster} / {p.accelerator}")
        out.append(f'<g class="pool" data-pool="{escape(p.cluster)}/{escape(p.accelerator)}">'
                   f'<text x="{_LABEL_W - 8}" y="{y + 15}" class="label" text-anchor="end">{label}</text>'
                   f'<rect x="{x}" y="{y + 2}" width="{p.devices * scale:.1f}" height="18" class="down"/>'
                   f'<rect x="{x}" y="{y + 2}" width="{p.up * scale:.1f}" height="18" class="free"/>')
        left = float(x)
        for tier in TIERS:
            n = p.used_by_tier[tier]
            if n:
                w = n * scale
                out.append(f'<rect x="{left:.1f}" y="{y + 2}" width="{w:.1f}" height="18" class="tier-{tier}">'
                           f'<title>{tier}: {n} devices</title></rect>')
                left += w
        share = f"{p.share:.0%}" if p.up else "all down"
        out.append(f'<text x="{x + p.devices * scale + 6:.1f}" y="{y + 15}" class="value">'
                   f'{p.used}/{p.up} ({share})</text></g>')
    out.append("</svg>")
    return "".join(out)
