"""plan_html.py - the capacity planner's HTML report: one self-contained page (inline CSS, no
script) with, per route, the cost curve as inline SVG (provisioned size on x, monthly cost on y:
the hybrid curve, all pay-as-you-go and provisioned-for-the-peak as lines, the recommendation
marked) and the table. Every piece of text goes through html.escape.
"""

import math
from html import escape

W, H = 720, 360
ML, MR, MT, MB = 80, 20, 20, 50  # margins: room for the axes' labels

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}
td,th{padding:.2em .6em;text-align:right;border-bottom:1px solid #ddd}
th{background:#f4f4f4}tr.rec td{background:#e8f5e9;font-weight:600}
p.why{background:#f7f7fb;padding:.6em;border-left:3px solid #3949ab}
.notes{color:#555;font-size:.9em}
svg text{font:12px system-ui,sans-serif;fill:#333}
"""


def e(x):
    return escape(str(x), quote=True)


def _ticks(hi, n=5):
    """About n round tick values from 0 to at least hi."""
    if hi <= 0:
        return [0, 1]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks, v = [], 0.0
    while v < hi + step / 2:
        ticks.append(v)
        v += step
    return ticks


def svg(r):
    """The cost curve of one route (r: a route of the JSON output)."""
    sizes = r["sizes"]
    xmax = max(s["units"] for s in sizes) or 1
    ymax = max([s["monthly_cost"] for s in sizes] + [r["payg_monthly"], r["peak_monthly"]])
    yt = _ticks(ymax)
    ytop = yt[-1] or 1
    pw, ph = W - ML - MR, H - MT - MB

    def X(u):
        return ML + pw * u / xmax

    def Y(c):
        return MT + ph * (1 - c / ytop)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'role="img" aria-label="%s">' % (W, H, W, H, e("monthly cost by provisioned size, " +
                                                          r["route"]))]
    for t in yt:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' %
                   (ML, W - MR, Y(t), Y(t)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' %
                   (ML - 6, Y(t) + 4, e("{:,.0f}".format(t))))
    xstep = max(1, math.ceil(xmax / 8))  # sizes are whole units
    for t in range(0, xmax + 1, xstep):
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' %
                   (X(t), H - MB + 16, e(t)))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>' %
               (ML, W - MR, H - MB, H - MB))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>' % (ML, ML, MT, H - MB))
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' %
               (ML + pw // 2, H - 10, e("provisioned size (units of %s tpm)" %
                                        "{:,}".format(r["unit"]["tpm"]))))
    out.append('<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s'
               '</text>' % (MT + ph // 2, MT + ph // 2, e("monthly cost, " + r["currency"])))
    for y, color, label in ((r["payg_monthly"], "#c62828", "all pay-as-you-go"),
                            (r["peak_monthly"], "#6a1b9a",
                             "provisioned for the peak (%d units)" % r["peak_units"])):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" '
                   'stroke-dasharray="6 4"/>' % (ML, W - MR, Y(y), Y(y), color))
        out.append('<text x="%d" y="%.1f" text-anchor="end" style="fill:%s">%s</text>' %
                   (W - MR - 4, Y(y) - 5, color, e(label)))
    pts = " ".join("%.1f,%.1f" % (X(s["units"]), Y(s["monthly_cost"])) for s in sizes)
    out.append('<polyline points="%s" fill="none" stroke="#1565c0" stroke-width="2"/>' % pts)
    rec = next((s for s in sizes if s["units"] == r["recommended_units"]), None)
    if rec:
        cx, cy = X(rec["units"]), Y(rec["monthly_cost"])
        out.append('<circle cx="%.1f" cy="%.1f" r="6" fill="#2e7d32"/>' % (cx, cy))
        out.append('<text x="%.1f" y="%.1f" text-anchor="%s" style="fill:#2e7d32">%s</text>' %
                   (cx + (8 if rec["units"] < xmax / 2 else -8), cy + 18,
                    "start" if rec["units"] < xmax / 2 else "end",
                    e("recommended: %d units" % rec["units"])))
    out.append('<text x="%d" y="%d" style="fill:#1565c0">%s</text>' %
               (ML + 8, MT + 14, e("hybrid: N units + overflow to pay-as-you-go")))
    out.append("</svg>")
    return "\n".join(out)


def _pct(x):
    return "-" if x is None else "%.1f %%" % (x * 100)


def route_table(r):
    head = ("units", "tpm", "streams", "monthly " + r["currency"], "vs PAYG", "vs peak",
            "overflow", "added ms")
    rows = ["<tr>" + "".join("<th>%s</th>" % e(h) for h in head) + "</tr>"]
    for s in r["sizes"]:
        cls = ' class="rec"' if s["units"] == r["recommended_units"] else ""
        cells = (s["units"], "{:,}".format(s["tpm"]),
                 "-" if s["streams"] is None else s["streams"],
                 "{:,.2f}".format(s["monthly_cost"]), _pct(s["saving_vs_payg"]),
                 _pct(s["saving_vs_peak"]), _pct(s["overflow_share"]),
                 "%.1f" % s["added_latency_ms"])
        rows.append("<tr%s>" % cls + "".join("<td>%s</td>" % e(c) for c in cells) + "</tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def render(j):
    """The whole page from the planner's JSON output."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>%s</title>" % e("trilemma-plan: " + j["source"]),
             "<style>%s</style></head><body>" % CSS,
             "<h1>Capacity plan</h1>",
             "<p class=\"notes\">%s</p>" % "<br>".join(e(n) for n in
                                                       ["source: " + j["source"]] + j["notes"]),
             "<p class=\"notes\">Monthly = the observed period scaled to 30 days; provisioned "
             "units cost their hourly price for 720 hours.</p>"]
    for r in j["routes"]:
        u = r["unit"]
        parts += ["<h2>%s</h2>" % e(r["route"]),
                  "<p>Unit <code>[capacity %s]</code>: %s tpm%s, %s %s an hour%s. Observed "
                  "%s s (x %.2f to a month); peak %d units, average %d. Pay-as-you-go adds "
                  "%s ms.</p>" % (e(u["name"]), e("{:,}".format(u["tpm"])),
                                  e(", %d streams" % u["streams"]) if u["streams"] else "",
                                  e("{:,.2f}".format(u["hourly_price"])), e(r["currency"]),
                                  e(" in " + u["region"]) if u["region"] else "",
                                  e("{:,}".format(r["observed_s"])), r["month_scale"],
                                  r["peak_units"], r["avg_units"], e(r["payg_latency_ms"])),
                  svg(r), '<p class="why">%s</p>' % e("Recommendation: " + r["why"]),
                  "<p>%s</p>" % e(r["seed_text"]), route_table(r)]
    for s in j["skipped"]:
        parts.append("<p class=\"notes\">%s</p>" % e("route %s: no capacity unit, not planned"
                                                    % s))
    parts.append("</body></html>\n")
    return "\n".join(parts)
