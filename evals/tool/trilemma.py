"""trilemma.py - the trilemma report (`trilemma-eval trilemma`, docs/evals.md "The trilemma
report"): the same golden set and the same recorded traffic mix under N named configurations,
from the naive one to the tuned one, side by side on cost, latency and quality.

Per configuration (a folder of evals/configs/trilemma/, see serve.py for what it may hold):
  quality  the golden set through a stack of its own with instant answers (the scores do not
           depend on pacing): every dimension of docs/evals.md;
  traffic  the seeded conversation mix (traffic.py) through a fresh stack (caches start empty),
           with the simulator's default timing when --real-pacing: cost per conversation
           (turn_end.cost), first-token and total latency p50/p99 over turns.
Then: one table (Markdown and JSON), one plot (self-contained HTML, inline SVG, no script),
the Pareto frontier over cost / first-token p99 / quality, and the levers: what each step from
one configuration to the next moved.

The pure parts (frontier, deltas, rendering) are unit-tested in tests/evals/test_trilemma.py.
"""

import asyncio
import datetime
import html
import json
import math
import os
import sys
import time
import types

import report

FORMAT = "trilemma-report/1"
# what counts as "moved" between two configurations (the levers section)
MOVE = {"cost_rel": 0.05,  # cost per conversation changed by 5 % or more
        "latency_rel": 0.10, "latency_abs_ms": 20,  # a latency by 10 % and 20 ms or more
        "quality_points": 0.5,  # the headline quality by half a point (of 100) or more
        "dim": 0.02}  # a single dimension by 0.02 or more (listed)
LATENCIES = ("first_token_p50", "first_token_p99", "total_p50", "total_p99")
LAT_LABELS = {"first_token_p50": "first token p50", "first_token_p99": "first token p99",
              "total_p50": "total p50", "total_p99": "total p99"}


# ---------------------------------------------------------------------------------------------
# pure parts


def capacity_cost_micros(tokens, cap, utilization, usd_to_inr):
    """What `tokens` served by a provisioned deployment cost, in INR micros: its hourly price
    spread over the tokens it serves in an hour at the given utilization (tpm x 60 x U): the
    price per token of a deployment sized so that the traffic keeps it that busy. cap is its
    [capacity NAME] section (hourly_price, currency USD or INR, tpm)."""
    price = float(cap.get("hourly_price") or 0)
    tpm = float(cap["tpm"])
    if not tokens or not price:
        return 0.0
    if not 0 < utilization <= 1 or tpm <= 0:
        raise ValueError("capacity utilization must be in (0, 1] and tpm above 0")
    inr = price * (usd_to_inr if cap.get("currency", "USD").upper() == "USD" else 1.0)
    return tokens * inr * 1e6 / (tpm * 60 * utilization)


def pareto(points, senses):
    """Which points are on the Pareto frontier: points are tuples of axis values, senses one of
    +1 (higher is better) or -1 (lower is better) per axis. A point is dominated when another is
    at least as good on every axis and better on one. A missing value (None) is the worst value
    of its axis. Equal points are all on the frontier."""
    def key(p):
        return [(-math.inf if v is None else v * s) for v, s in zip(p, senses)]

    ks = [key(p) for p in points]
    out = []
    for i, a in enumerate(ks):
        dominated = any(all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a))
                        for j, b in enumerate(ks) if j != i)
        out.append(not dominated)
    return out


def headline(quality, dims):
    """The headline quality: the mean of the dimensions' means, in points (0-100); None when no
    dimension has a value."""
    vals = [quality.get(d) for d in dims if quality.get(d) is not None]
    return 100.0 * sum(vals) / len(vals) if vals else None


def common_dims(rows):
    """The dimensions every row scored (the headline averages the same ones for everyone), in
    report.DIMS order."""
    dims = [d for d in report.DIMS if rows and all(r["quality"].get(d) is not None for r in rows)]
    return dims


def _moved_latency(a, b):
    if a is None or b is None:
        return False
    d = abs(b - a)
    return d >= MOVE["latency_abs_ms"] and d >= MOVE["latency_rel"] * max(abs(a), 1e-9)


def lever_delta(a, b, dims):
    """What changed from row a to row b: cost (ratio, %), each latency (ms), the headline quality
    (points) and every dimension that moved by MOVE["dim"] or more; `moved` names the axes
    (cost, latency, quality) that moved by the MOVE thresholds."""
    ca, cb = a["cost_per_conversation_micros"], b["cost_per_conversation_micros"]
    cost = {"a": ca, "b": cb, "ratio": (cb / ca) if ca else None,
            "pct": 100.0 * (cb - ca) / ca if ca else None}
    lat = {}
    for k in LATENCIES:
        la, lb = a["latency_ms"].get(k), b["latency_ms"].get(k)
        lat[k] = {"a": la, "b": lb, "diff": None if la is None or lb is None else lb - la}
    qa, qb = a.get("headline"), b.get("headline")
    dim_d = {}
    for d in dims:
        va, vb = a["quality"].get(d), b["quality"].get(d)
        if va is not None and vb is not None and abs(vb - va) >= MOVE["dim"] - 1e-12:
            dim_d[d] = vb - va
    moved = []
    if ca and cb is not None and abs(cb - ca) >= MOVE["cost_rel"] * ca:
        moved.append("cost")
    elif not ca and cb:
        moved.append("cost")
    if any(_moved_latency(lat[k]["a"], lat[k]["b"]) for k in LATENCIES):
        moved.append("latency")
    q = None if qa is None or qb is None else qb - qa
    if (q is not None and abs(q) >= MOVE["quality_points"] - 1e-12) or dim_d:
        moved.append("quality")
    return {"from": a["name"], "to": b["name"], "cost": cost, "latency_ms": lat,
            "quality_points": q, "dims": dim_d, "moved": moved}


def levers(rows, dims):
    return [lever_delta(rows[i], rows[i + 1], dims) for i in range(len(rows) - 1)]


def goal(rows, dims, cheaper=10.0, points=2.0):
    """The issue's goal for the last configuration (the tuned one) against the first (the naive
    one): at least `cheaper` times cheaper per conversation, the headline quality and every
    dimension within `points` (of 100), first-token p99 no worse."""
    if len(rows) < 2:
        return None
    n, t = rows[0], rows[-1]
    cn, ct = n["cost_per_conversation_micros"], t["cost_per_conversation_micros"]
    times = (cn / ct) if ct else None  # None: the tuned one is free (or both are)
    q = None if n["headline"] is None or t["headline"] is None else t["headline"] - n["headline"]
    worse = {d: 100.0 * (t["quality"][d] - n["quality"][d]) for d in dims
             if t["quality"].get(d) is not None and n["quality"].get(d) is not None
             and 100.0 * (n["quality"][d] - t["quality"][d]) > points + 1e-9}
    fa, fb = n["latency_ms"].get("first_token_p99"), t["latency_ms"].get("first_token_p99")
    checks = {"cost": (times is not None and times >= cheaper) or (ct == 0 and bool(cn)),
              "quality": q is not None and q >= -points and not worse,
              "first_token_p99": fa is not None and fb is not None and fb <= fa}
    return {"naive": n["name"], "tuned": t["name"], "times_cheaper": times,
            "quality_points": q, "dims_worse": worse, "first_token_p99": {"naive": fa, "tuned": fb},
            "checks": checks, "met": all(checks.values()), "target_times": cheaper,
            "target_points": points}


def assemble(rows, meta):
    """The report: rows with their ratio to the first (naive) row, headline, frontier; the
    levers; the goal."""
    dims = common_dims(rows)
    base = rows[0]["cost_per_conversation_micros"] if rows else None
    for r in rows:
        r["headline"] = headline(r["quality"], dims)
        c = r["cost_per_conversation_micros"]
        r["times_cheaper_than_naive"] = (base / c) if c else None
    front = pareto([(r["cost_per_conversation_micros"], r["latency_ms"].get("first_token_p99"),
                     r["headline"]) for r in rows], (-1, -1, +1))
    for r, f in zip(rows, front):
        r["frontier"] = f
    out = {"format": FORMAT, "dims": dims, "headline": "mean of the %d dimensions x 100" % len(dims),
           "frontier_axes": ["cost per conversation (lower)", "first-token p99 (lower)",
                             "headline quality (higher)"],
           "rows": rows, "levers": levers(rows, dims), "goal": goal(rows, dims)}
    out.update(meta)
    return out


# ---------------------------------------------------------------------------------------------
# rendering


def _md(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def _num(v, fmt="%.0f"):
    return "–" if v is None else fmt % v


def money(micros, currency="INR"):
    if micros is None:
        return "–"
    sym = "₹" if currency == "INR" else (currency + " ")
    v = micros / 1e6
    return sym + ("%.4f" % v if v < 1 else "%.2f" % v)


def times(v, free=False):
    if free:
        return "free"
    if v is None:
        return "–"
    return "%.1f×" % v if v < 100 else "%.0f×" % v


def table_md(rep):
    """The one table: a row per configuration."""
    dims = rep["dims"]
    cur = rep["rows"][0]["currency"] if rep["rows"] else "INR"
    head = (["configuration", "cost / conversation", "cheaper than naive",
             "first token p50 / p99 (ms)", "total p50 / p99 (ms)", "quality (points)"] +
            [report.LABELS[d] for d in dims] + ["frontier"])
    lines = ["| " + " | ".join(head) + " |",
             "|---|" + "---:|" * (len(head) - 2) + ":---:|"]
    for r in rep["rows"]:
        lat = r["latency_ms"]
        cells = [_md(r["name"]), money(r["cost_per_conversation_micros"], cur),
                 times(r["times_cheaper_than_naive"], r["cost_per_conversation_micros"] == 0),
                 "%s / %s" % (_num(lat.get("first_token_p50")), _num(lat.get("first_token_p99"))),
                 "%s / %s" % (_num(lat.get("total_p50")), _num(lat.get("total_p99"))),
                 _num(r["headline"], "%.1f")] + [report.fmt(r["quality"].get(d)) for d in dims] + [
                     "**yes**" if r["frontier"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details_rows(rep):
    """Per configuration, what the traffic did: the client's own latencies, turns, what the
    caches answered, escalations, errors, tokens (in / of which cached / out)."""
    head = ["configuration", "client first token p50 / p99 (ms)", "client total p50 / p99 (ms)",
            "turns", "answered by a cache", "escalated", "errors",
            "tokens in / cached / out", "provisioned tokens (their price)", "eval cost per case"]
    cur = rep["rows"][0]["currency"] if rep["rows"] else "INR"
    out = []
    for r in rep["rows"]:
        lat, t = r["latency_ms"], r.get("traffic", {})
        tok = t.get("tokens", {})
        hits = ", ".join("%s %d" % kv for kv in sorted(t.get("cache_hits", {}).items())) or "–"
        out.append([r["name"], "%s / %s" % (_num(lat.get("client_first_token_p50")),
                                            _num(lat.get("client_first_token_p99"))),
                    "%s / %s" % (_num(lat.get("client_total_p50")),
                                 _num(lat.get("client_total_p99"))),
                    str(t.get("turns", "–")), hits, str(t.get("escalations", "–")),
                    str(t.get("errors", "–")),
                    "%s / %s / %s" % (tok.get("input_tokens", "–"),
                                      tok.get("cached_input_tokens", "–"),
                                      tok.get("output_tokens", "–")),
                    "%d (%s)" % (t["provisioned_tokens"], money(t.get("capacity_micros", 0), cur))
                    if t.get("provisioned_tokens") else "–",
                    money((r.get("eval") or {}).get("cost_per_case_micros"), cur)])
    return head, out


def details_md(rep):
    head, rows = details_rows(rep)
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def lever_lines(rep):
    """The levers: a line per step, what moved and by how much."""
    out = []
    cur = rep["rows"][0]["currency"] if rep["rows"] else "INR"
    for lv in rep["levers"]:
        c = lv["cost"]
        parts = ["cost %s → %s (%s)" % (money(c["a"], cur), money(c["b"], cur),
                                        "–" if c["pct"] is None else "%+.1f %%" % c["pct"])]
        parts.append(", ".join("%s %s ms" % (LAT_LABELS[k], "–" if v["diff"] is None
                                             else "%+.0f" % v["diff"])
                               for k, v in lv["latency_ms"].items()))
        parts.append("quality %s points" % ("–" if lv["quality_points"] is None
                                            else "%+.1f" % lv["quality_points"]))
        if lv["dims"]:
            parts.append("; ".join("%s %+.3f" % (report.LABELS.get(d, d), v)
                                   for d, v in sorted(lv["dims"].items(), key=lambda kv: kv[1])))
        moved = ", ".join(lv["moved"]) if lv["moved"] else "nothing"
        out.append("- **%s → %s** moved %s: %s" % (_md(lv["from"]), _md(lv["to"]), moved,
                                                   "; ".join(parts)))
    return out


def goal_lines(rep):
    g = rep.get("goal")
    if not g:
        return []
    ok = {True: "met", False: "NOT met"}
    fp = g["first_token_p99"]
    lines = ["Goal (%s against %s): %s." % (_md(g["tuned"]), _md(g["naive"]),
                                           "met" if g["met"] else "not met"),
             "- at least %.0f× cheaper per conversation: %s (%s)" % (
                 g["target_times"], times(g["times_cheaper"], g["times_cheaper"] is None and
                                          g["checks"]["cost"]), ok[g["checks"]["cost"]]),
             "- quality within %.0f points: %s points%s (%s)" % (
                 g["target_points"], _num(g["quality_points"], "%+.1f"),
                 "; worse by more: " + ", ".join("%s %+.1f" % (report.LABELS.get(d, d), v)
                                                 for d, v in sorted(g["dims_worse"].items()))
                 if g["dims_worse"] else "", ok[g["checks"]["quality"]]),
             "- first-token p99 no worse: %s → %s ms (%s)" % (
                 _num(fp["naive"]), _num(fp["tuned"]), ok[g["checks"]["first_token_p99"]])]
    return lines


def markdown(rep):
    out = ["# The trilemma report", "", table_md(rep), "",
           "Cost per conversation: turn_end.cost summed over the conversation's turns, mean over "
           "the traffic mix; latencies: the server's turn_end.latency_ms over every turn of the "
           "mix; quality: %s (headline). Frontier: %s." % (rep["headline"],
                                                            ", ".join(rep["frontier_axes"])), ""]
    for n in rep.get("notes", []):
        out.append("- " + n)
    out += ["", "## The traffic in detail", "", details_md(rep)]
    out += ["", "## Levers", ""] + lever_lines(rep)
    gl = goal_lines(rep)
    if gl:
        out += ["", "## The goal", ""] + gl
    return "\n".join(out) + "\n"


# -- the plot


def _log_ticks(lo, hi):
    """Tick values 1, 2, 5 x 10^k inside [lo, hi] (lo > 0)."""
    out = []
    for k in range(int(math.floor(math.log10(lo))) - 1, int(math.ceil(math.log10(hi))) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** k
            if lo <= v <= hi:
                out.append(v)
    return out


def _lin_ticks(lo, hi, n=5):
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / n)) if span > 0 else 1
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    v = math.ceil(lo / step) * step
    out = []
    while v <= hi + 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _tick_label(v):
    if v >= 1:
        return "%g" % v
    return ("%.6f" % v).rstrip("0")


def label_positions(labels, line=13, char=6.5):
    """Where to write each label (x, y, text) so that none overlaps one written before it: a
    label that would is moved down a line at a time (configurations with equal values)."""
    placed, out = [], []
    for x, y, text in labels:
        w = char * len(text)
        while any(abs(y - py) < line and x < px + pw and px < x + w for px, py, pw in placed):
            y += line
        placed.append((x, y, w))
        out.append((x, y))
    return out


def scatter_svg(points, xlabel, ylabel, title, w=640, h=380):
    """One panel: points are dicts {x (> 0, log scale), y, r (radius), label, on (frontier)}.
    Returns an <svg> element (every text escaped)."""
    ml, mr, mt, mb = 70, 150, 34, 48
    pw, ph = w - ml - mr, h - mt - mb
    xs = [p["x"] for p in points if p["x"] is not None and p["x"] > 0]
    ys = [p["y"] for p in points if p["y"] is not None]
    x0, x1 = (min(xs), max(xs)) if xs else (1.0, 10.0)
    x0, x1 = x0 / 1.6, x1 * 1.6
    y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = max((y1 - y0) * 0.15, abs(y1) * 0.02, 1e-3)
    y0, y1 = y0 - pad, y1 + pad

    def X(v):
        return ml + pw * (math.log10(v) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))

    def Y(v):
        return mt + ph * (1 - (v - y0) / (y1 - y0))

    e = html.escape
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'role="img" aria-label="%s">' % (w, h, w, h, e(title)),
           '<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>' % (ml, e(title)),
           '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (
               ml, mt, pw, ph)]
    for v in _log_ticks(x0, x1):
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>'
                   '<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>' % (
                       X(v), mt, X(v), mt + ph, X(v), mt + ph + 15, e(_tick_label(v))))
    for v in _lin_ticks(y0, y1):
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>'
                   '<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>' % (
                       ml, Y(v), ml + pw, Y(v), ml - 5, Y(v) + 4, e("%g" % v)))
    out.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>' % (
        ml + pw / 2, h - 8, e(xlabel)))
    out.append('<text x="14" y="%.1f" font-size="12" text-anchor="middle" '
               'transform="rotate(-90 14 %.1f)">%s</text>' % (mt + ph / 2, mt + ph / 2, e(ylabel)))
    front = sorted((p for p in points if p["on"] and p["x"] and p["y"] is not None),
                   key=lambda p: p["x"])
    if len(front) > 1:
        out.append('<polyline fill="none" stroke="#1b7f3b" stroke-dasharray="4 3" points="%s"/>'
                   % " ".join("%.1f,%.1f" % (X(p["x"]), Y(p["y"])) for p in front))
    shown = [p for p in points if p["x"] and p["y"] is not None]
    for p in shown:
        fill, stroke = ("#2fa35a", "#1b7f3b") if p["on"] else ("#bbb", "#777")
        out.append('<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" fill-opacity="0.6" '
                   'stroke="%s"><title>%s</title></circle>' % (
                       X(p["x"]), Y(p["y"]), p["r"], fill, stroke, e(p.get("tip", p["label"]))))
    for (x, y), p in zip(label_positions([(X(p["x"]) + p["r"] + 3, Y(p["y"]) + 4, p["label"])
                                          for p in shown]), shown):
        out.append('<text x="%.1f" y="%.1f" font-size="11">%s</text>' % (x, y, e(p["label"])))
    out.append('<text x="%d" y="%d" font-size="11" fill="#1b7f3b">● on the frontier</text>'
               '<text x="%d" y="%d" font-size="11" fill="#777">● dominated</text>' % (
                   ml + pw + 12, mt + 12, ml + pw + 12, mt + 28))
    out.append("</svg>")
    return "\n".join(out)


def plot_svgs(rep):
    rows = rep["rows"]
    cur = rows[0]["currency"] if rows else "INR"
    sym = "₹" if cur == "INR" else cur
    p99 = [r["latency_ms"].get("first_token_p99") for r in rows]
    top = max([v for v in p99 if v is not None] or [1]) or 1

    def radius(v):
        return 5 + 17 * math.sqrt(max(v, 0) / top) if v is not None else 5

    def cost(r):
        return (r["cost_per_conversation_micros"] or 0) / 1e6

    a = [{"x": cost(r), "y": r["headline"], "r": radius(r["latency_ms"].get("first_token_p99")),
          "label": r["name"], "on": r["frontier"],
          "tip": "%s: %s%.4f per conversation, quality %s, first token p99 %s ms" % (
              r["name"], sym, cost(r), _num(r["headline"], "%.1f"),
              _num(r["latency_ms"].get("first_token_p99")))} for r in rows]
    b = [{"x": cost(r), "y": r["latency_ms"].get("first_token_p99"), "r": 6, "label": r["name"],
          "on": r["frontier"]} for r in rows]
    return [scatter_svg(a, "cost per conversation (%s, log scale)" % sym,
                        "quality (points)", "Cost vs quality (marker size: first-token p99)"),
            scatter_svg(b, "cost per conversation (%s, log scale)" % sym,
                        "first-token p99 (ms)", "Cost vs first-token latency (p99)")]


def html_report(rep):
    """Self-contained HTML: the table, the plot (inline SVG), the levers, the goal; no script,
    every text escaped."""
    e = report.esc
    dims = rep["dims"]
    cur = rep["rows"][0]["currency"] if rep["rows"] else "INR"
    head = ["configuration", "cost / conversation", "cheaper than naive", "first token p50 / p99 "
            "(ms)", "total p50 / p99 (ms)", "quality (points)"] + [
        report.LABELS[d] for d in dims] + ["frontier"]
    rows, cls = [], []
    for r in rep["rows"]:
        lat = r["latency_ms"]
        rows.append([e(r["name"]), e(money(r["cost_per_conversation_micros"], cur)),
                     e(times(r["times_cheaper_than_naive"],
                               r["cost_per_conversation_micros"] == 0)),
                     "%s / %s" % (_num(lat.get("first_token_p50")), _num(lat.get("first_token_p99"))),
                     "%s / %s" % (_num(lat.get("total_p50")), _num(lat.get("total_p99"))),
                     _num(r["headline"], "%.1f")] + [report.fmt(r["quality"].get(d)) for d in dims]
                    + ["yes" if r["frontier"] else "no"])
        cls.append([""] * (len(head) - 1) + ["good" if r["frontier"] else ""])
    parts = ["<!doctype html><html><head><meta charset=utf-8><title>The trilemma report</title>"
             "<style>%s\nbody{max-width:none}td{white-space:nowrap}</style></head><body>" %
             report.CSS,
             "<h1>The trilemma report</h1>",
             "<p class=m>%s</p>" % e(rep.get("summary_line", "")),
             report._table(head, rows, cls)]
    parts += ["<p class=m>%s</p>" % e(n) for n in rep.get("notes", [])]
    parts.append("<h2>The plot</h2>")
    parts += plot_svgs(rep)
    dh, dr = details_rows(rep)
    parts.append("<h2>The traffic in detail</h2>")
    parts.append(report._table(dh, [[e(c) for c in r] for r in dr]))
    parts.append("<h2>Levers</h2><ul>")
    for line in lever_lines(rep):
        parts.append("<li>%s</li>" % e(line[2:].replace("**", "")))
    parts.append("</ul>")
    gl = goal_lines(rep)
    if gl:
        parts.append("<h2>The goal</h2><p>%s</p><ul>%s</ul>" % (
            e(gl[0]), "".join("<li>%s</li>" % e(x[2:]) for x in gl[1:])))
    if rep.get("command"):
        parts.append("<p class=m>command: <code>%s</code></p>" % e(rep["command"]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# the run


def config_dirs(source, configs, all_):
    """The configuration folders, in order: the ones given, or every folder of
    evals/configs/trilemma (sorted by name: NN-name)."""
    if configs:
        return [os.path.abspath(c) for c in configs]
    root = os.path.join(source, "evals", "configs", "trilemma")
    return [os.path.join(root, d) for d in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, d, "agents.ini"))]


class StackFailed(RuntimeError):
    pass


def start_stack(source, build, cdir, name, **kw):
    """A configuration's stack, started; a stack that does not come up (trilemmad refusing the
    configuration's server.ini, a simulator flag it does not know) is a StackFailed naming the
    configuration, with the end of the log that says why."""
    import serve

    try:
        return serve.Stack(source, build, cdir, **kw).start()
    except (AssertionError, RuntimeError) as e:
        raise StackFailed("%s: the stack did not start: %s" % (name, str(e)[-1500:]))


def _quality(a, cdir, name, cases, source, build, make_run):
    import runner

    stack = start_stack(source, build, cdir, name, seed=a.seed, fast=True,
                        sim_args=a.sim_arg or [])
    try:
        tools_file = os.path.join(cdir, "tools.json")
        if not os.path.exists(tools_file):
            tools_file = os.path.join(source, "config", "tools.json")
        catalog = runner.Catalog(stack.sim_url, tools_file)
        judge = runner.Judge(stack.sim_url + "/v1", a.judge,
                             os.path.join(source, "evals", "judge_rubric.md"),
                             os.path.join(source, "config", "prices.csv"))
        opts = types.SimpleNamespace(ws_url=stack.ws_url, http_url=stack.http_url,
                                     admin_token=stack.admin_token, concurrency=a.concurrency,
                                     timeout=a.timeout)
        t0 = time.monotonic()
        results = asyncio.run(runner.run_set(cases, opts, catalog, judge))
        wall = time.monotonic() - t0
    finally:
        stack.stop()
    return make_run(name, a.set, cases, cdir, judge, wall, results)


def _provisioned(stack, convs, capacities):
    """Per conversation, the tokens the provisioned deployments served (the read API's calls)."""
    import runner
    import traffic

    for c in convs:
        c["provisioned_tokens"] = {}
        if c.get("conversation_id"):
            conv = runner.http_json("%s/v1/conversations/%s" % (
                stack.http_url.rstrip("/"), c["conversation_id"]), token=stack.admin_token)
            c["provisioned_tokens"] = traffic.provisioned_tokens(conv, capacities)


def _traffic(a, cdir, warm, mix, source, build):
    import runner
    import serve
    import traffic

    stack = start_stack(source, build, cdir, os.path.basename(cdir), seed=a.seed,
                        fast=not a.real_pacing, sim_args=a.sim_arg or [])
    try:
        if warm:
            asyncio.run(traffic.run_mix(stack.ws_url, warm, a.traffic_concurrency, a.timeout))
        t0 = time.monotonic()
        convs = asyncio.run(traffic.run_mix(stack.ws_url, mix, a.traffic_concurrency, a.timeout,
                                            runner.Progress(len(mix), what="conversations")))
        wall = time.monotonic() - t0
        caps = serve.describe_config(cdir)["capacities"]
        if caps:
            _provisioned(stack, convs, caps)
    finally:
        stack.stop()
    return convs, wall


def capacity_share(cdir, convs, utilization):
    """The provisioned deployments' price of what they served in the traffic (INR micros; 0
    without [capacity] sections)."""
    import serve

    cfg = serve.describe_config(cdir)
    rate = float((cfg["server"].get("pricing") or {}).get("usd_to_inr", 84.0))
    total = 0.0
    for name, cap in cfg["capacities"].items():
        tokens = sum(c.get("provisioned_tokens", {}).get(name, 0) for c in convs)
        total += capacity_cost_micros(tokens, cap, utilization, rate)
    return total


def run(a, source, build, make_run):
    """`trilemma-eval trilemma`: every configuration's quality and traffic, then the report.
    make_run(name, set, cases, config_dir, judge, wall, results) is trilemma_eval's run record.
    Returns the report (also written to OUTDIR)."""
    import goldenset
    import traffic

    dirs = config_dirs(source, a.configs, a.all)
    if not dirs:
        raise ValueError("no configurations (give --configs DIR... or --all)")
    for d in dirs:
        if not os.path.isfile(os.path.join(d, "agents.ini")):
            raise ValueError("%s has no agents.ini" % d)
    names = [os.path.basename(d.rstrip("/")) for d in dirs]
    if len(set(names)) != len(names):
        raise ValueError("two configurations have the same folder name")
    cases = goldenset.load(a.set, include_retired=False)
    if a.subset:
        cases = goldenset.subset(cases, a.subset)
    if not cases:
        raise ValueError("no cases to run")
    corpus = traffic.load_corpus(a.corpus)
    stream = traffic.build_mix(corpus, a.warmup + a.traffic, a.traffic_seed)
    warm, mix = stream[:a.warmup], stream[a.warmup:]
    os.makedirs(a.output, exist_ok=True)
    rows = []
    for d, name in zip(dirs, names):
        print("trilemma: %s: quality (%d cases, instant answers)" % (name, len(cases)),
              file=sys.stderr, flush=True)
        ev = _quality(a, d, name, cases, source, build, make_run)
        with open(os.path.join(a.output, "eval-%s.json" % name), "w", encoding="utf-8") as f:
            json.dump(ev, f, indent=1, ensure_ascii=False)
        with open(os.path.join(a.output, "eval-%s.html" % name), "w", encoding="utf-8") as f:
            f.write(report.run_html(ev))
        print("trilemma: %s: traffic (%d conversations%s, %s)" % (
            name, len(mix), ", %d to warm up" % len(warm) if warm else "",
            "the simulator's default timing" if a.real_pacing else "instant answers"),
            file=sys.stderr, flush=True)
        convs, wall = _traffic(a, d, warm, mix, source, build)
        ts = traffic.summarize(convs)
        cap_micros = capacity_share(d, convs, a.capacity_utilization)
        if cap_micros:
            ts["capacity_micros"] = cap_micros
            ts["cost_per_conversation_micros"] = (ts["cost_micros"] + cap_micros) / len(convs)
        with open(os.path.join(a.output, "traffic-%s.json" % name), "w", encoding="utf-8") as f:
            json.dump({"name": name, "summary": ts, "wall_s": round(wall, 3),
                       "conversations": convs}, f, indent=1, ensure_ascii=False)
        rows.append({"name": name, "config": os.path.relpath(d, source) if d.startswith(source)
                     else d, "currency": ts["currency"],
                     "cost_per_conversation_micros": ts["cost_per_conversation_micros"],
                     "latency_ms": ts["latency_ms"], "quality": ev["summary"]["overall"],
                     "eval": {"cases": len(cases), "cost_per_case_micros":
                              ev["summary"]["cost"]["per_case_micros"], "wall_s": ev["wall_s"],
                              "file": "eval-%s.json" % name},
                     "traffic": {k: ts[k] for k in ("conversations", "turns", "cache_hits",
                                                    "finish_reasons", "errors", "escalations",
                                                    "tokens")} | {
                         "wall_s": round(wall, 3),
                         "capacity_micros": ts.get("capacity_micros", 0),
                         "provisioned_tokens": sum(sum(c.get("provisioned_tokens", {}).values())
                                                   for c in convs)}})
    stats = traffic.mix_stats(mix)
    meta = {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": a.command,
        "set": {"path": os.path.relpath(a.set, source) if a.set.startswith(source) else a.set,
                "cases": len(cases), "sha256": goldenset.digest(a.set)},
        "traffic": {"corpus": os.path.relpath(a.corpus, source) if a.corpus.startswith(source)
                    else a.corpus, "seed": a.traffic_seed, "zipf_s": traffic.ZIPF_S,
                    "warmup": len(warm), "real_pacing": a.real_pacing,
                    "concurrency": a.traffic_concurrency, "mix": stats},
        "quality_pacing": "instant answers (the scores do not depend on pacing)",
        "sim_args": a.sim_arg or [],
        "notes": [
            "Quality: the golden set (%d cases) on a stack with instant answers; traffic: %d "
            "conversations (%d turns, %.0f %% of turns and %.0f %% of opening questions repeat an "
            "earlier conversation's text), seed %d, %s, %d at once, on a fresh stack per "
            "configuration (caches start empty%s)." % (
                len(cases), stats["conversations"], stats["turns"],
                100 * (stats["repeat_share"] or 0), 100 * (stats["opening_repeat_share"] or 0),
                a.traffic_seed, "the simulator's default timing (300 ms to the first token, "
                "40 tokens/s; the frontier tier twice as slow, the cheap one faster; catalog "
                "latencies)" if a.real_pacing else "instant answers (latency not meaningful)",
                a.traffic_concurrency,
                ", %d warm-up conversations first" % len(warm) if warm else ""),
            "Latencies come from one shared machine: they are indicative, comparable between the "
            "rows of one run only.",
            "A provisioned deployment ([capacity NAME]) costs its hourly price spread over the "
            "tokens it serves in an hour at %.0f %% utilization (tpm x 60 x %.2f): the price per "
            "token of a deployment sized so that the traffic keeps it that busy "
            "(--capacity-utilization); its tokens are the provisioned calls' of the read API, "
            "and the cost is added to turn_end.cost (which prices them per token only)." % (
                100 * a.capacity_utilization, a.capacity_utilization)],
    }
    meta["summary_line"] = "%s; set %s (%d cases); traffic %d conversations (seed %d, %s)" % (
        meta["started_at"], meta["set"]["path"], len(cases), len(mix), a.traffic_seed,
        "real pacing" if a.real_pacing else "instant answers")
    rep = assemble(rows, meta)
    with open(os.path.join(a.output, "trilemma.json"), "w", encoding="utf-8") as f:
        json.dump(rep, f, indent=1, ensure_ascii=False)
    md = markdown(rep)
    with open(os.path.join(a.output, "trilemma.md"), "w", encoding="utf-8") as f:
        f.write(md)
    with open(os.path.join(a.output, "trilemma.html"), "w", encoding="utf-8") as f:
        f.write(html_report(rep))
    print(md)
    return rep
