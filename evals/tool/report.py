"""report.py - text tables and self-contained HTML reports (inline CSS, no script, no external
resource) of eval runs and comparisons. Every model or user text is HTML-escaped."""

import html

DIMS = ["query_type", "tool_precision", "tool_recall", "precision_at_k", "ndcg_at_k",
        "relevance", "tonality", "factual_accuracy", "no_hallucination", "fact_recall", "format",
        "verbosity", "completed"]
LABELS = {"query_type": "query-type accuracy", "tool_precision": "tool precision",
          "tool_recall": "tool recall", "precision_at_k": "precision@5", "ndcg_at_k": "NDCG@5",
          "relevance": "relevance (judge)", "tonality": "tonality (judge)",
          "factual_accuracy": "factual accuracy", "no_hallucination": "no hallucination",
          "fact_recall": "facts stated", "format": "format (tables)", "verbosity": "verbosity",
          "completed": "completed"}

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;vertical-align:top}th{background:#f3f3f3}td.l,th.l{text-align:left}
.bad{background:#fde2e2}.good{background:#e2f5e2}pre{white-space:pre-wrap;margin:0;
font:12px/1.35 ui-monospace,monospace;max-width:520px}h2{margin-top:2em}.m{color:#777}"""


def fmt(v, pct=True):
    if v is None:
        return "–"
    if isinstance(v, float) and pct:
        return "%.3f" % v
    return str(v)


def esc(s):
    return html.escape("" if s is None else str(s))


def dims_of(runs):
    present = set()
    for r in runs:
        present |= {k for k, v in r["summary"]["overall"].items() if v is not None}
    return [d for d in DIMS if d in present]


def run_table(runs):
    """Markdown: one row per dimension, one column per run; then latency and cost rows."""
    dims = dims_of(runs)
    head = "| dimension | " + " | ".join(r["name"] for r in runs) + " |"
    lines = [head, "|---|" + "---:|" * len(runs)]
    for d in dims:
        lines.append("| %s | %s |" % (LABELS[d], " | ".join(
            fmt(r["summary"]["overall"].get(d)) for r in runs)))

    def row(label, f):
        lines.append("| %s | %s |" % (label, " | ".join(f(r) for r in runs)))

    row("first token p50 / p90 (ms)", lambda r: "%s / %s" % (
        fmt(r["summary"]["latency_ms"]["first_token_p50"]),
        fmt(r["summary"]["latency_ms"]["first_token_p90"])))
    row("total p50 / p90 (ms)", lambda r: "%s / %s" % (
        fmt(r["summary"]["latency_ms"]["total_p50"]), fmt(r["summary"]["latency_ms"]["total_p90"])))
    row("cost per case (%s)" % runs[0]["summary"]["cost"]["currency"],
        lambda r: "%.4f" % (r["summary"]["cost"]["per_case_micros"] / 1e6))
    row("judge share of eval cost", lambda r: fmt(r["summary"]["cost"]["judge_share"]))
    row("cases / throughput (cases/min)", lambda r: "%d / %s" % (
        r["set"]["cases"], fmt(r.get("throughput_cases_per_min"))))
    return "\n".join(lines)


def _table(headers, rows, cls=None):
    out = ["<table><tr>" + "".join("<th class=l>%s</th>" % esc(h) if i == 0 else
                                  "<th>%s</th>" % esc(h) for i, h in enumerate(headers)) + "</tr>"]
    for i, r in enumerate(rows):
        c = cls[i] if cls else [""] * len(r)
        out.append("<tr>" + "".join(
            '<td class="%s%s">%s</td>' % ("l " if j == 0 else "", c[j] if j < len(c) else "", v)
            for j, v in enumerate(r)) + "</tr>")
    return "\n".join(out) + "</table>"


def worst_cases(run, n=15):
    def badness(c):
        s = c["scores"]
        keys = [k for k in ("factual_accuracy", "no_hallucination", "query_type", "format",
                            "relevance", "ndcg_at_k", "fact_recall") if k in s]
        return sum(s[k] for k in keys) / max(1, len(keys))

    return sorted(run["cases"], key=badness)[:n]


def trace_url(run, c):
    """The dashboard's page of a case's turn: the run's trace link template with {conversation_id}
    and {turn_id}, prefixed with the server's HTTP URL when the run knows it."""
    tpl = run.get("trace_base") or "/admin/#conv={conversation_id}&turn={turn_id}"
    url = tpl.replace("{conversation_id}", c.get("conversation_id") or "").replace(
        "{turn_id}", c.get("turn_id") or "")
    return (run.get("server") or "").rstrip("/") + url if url.startswith("/") else url


def run_html(run):
    dims = dims_of([run])
    s = run["summary"]
    parts = ["<!doctype html><html><head><meta charset=utf-8><title>eval %s</title><style>%s"
             "</style></head><body>" % (esc(run["name"]), CSS),
             "<h1>Eval: %s</h1><p class=m>set %s v%s (%d cases, %s), judge %s, %s, %.1f s "
             "(%s cases/min)</p>" % (esc(run["name"]), esc(run["set"]["name"]),
                                     esc(run["set"]["version"]), run["set"]["cases"],
                                     esc(run["set"]["sha256"]), esc(run["judge"]),
                                     esc(run["started_at"]), run["wall_s"],
                                     esc(run.get("throughput_cases_per_min")))]
    cfg = run.get("config") or {}
    if cfg:
        parts.append("<p class=m>prompts: %s; agents: %s</p>" % (
            esc(", ".join("%s=%s" % kv for kv in sorted(cfg.get("prompt_versions", {}).items()))),
            esc("; ".join("%s: %s" % (k, v.get("cascade", "")) for k, v in
                          sorted(cfg.get("agents", {}).items())))))
    parts.append("<h2>Per dimension</h2>")
    parts.append(_table(["dimension", "score"], [[esc(LABELS[d]), fmt(s["overall"][d])]
                                                 for d in dims]))
    lat = s["latency_ms"]
    parts.append("<p>first token p50 %s ms, p90 %s ms; total p50 %s ms, p90 %s ms; cost %.4f %s "
                 "per case; judge %.4f %s in all (%s of the eval's cost)</p>" % (
                     fmt(lat["first_token_p50"]), fmt(lat["first_token_p90"]),
                     fmt(lat["total_p50"]), fmt(lat["total_p90"]),
                     s["cost"]["per_case_micros"] / 1e6, esc(s["cost"]["currency"]),
                     s["cost"]["judge_micros"] / 1e6, esc(s["cost"]["currency"]),
                     fmt(s["cost"]["judge_share"])))
    parts.append("<h2>Per query type</h2>")
    qts = sorted(s["by_query_type"])
    rows = [[esc(LABELS[d])] + [fmt(s["by_query_type"][q].get(d)) for q in qts] for d in dims]
    rows.insert(0, ["cases"] + [str(s["by_query_type"][q]["n"]) for q in qts])
    parts.append(_table(["dimension"] + qts, rows))
    parts.append("<h2>Worst cases</h2>")
    rows = []
    for c in worst_cases(run):
        link = ('<a href="%s">%s</a>' % (esc(trace_url(run, c)), esc(c["turn_id"][:8]))
                if c.get("turn_id") else "–")
        sc = ", ".join("%s %.2f" % (k, v) for k, v in sorted(c["scores"].items()) if v < 1)
        rows.append([esc(c["id"]), esc(c["expected_query_type"]) + " → " + esc(c["query_type"]),
                     "<pre>%s</pre>" % esc(c["query"]), "<pre>%s</pre>" % esc(c["answer"]),
                     esc(sc) + ("<br>ungrounded: " + esc(", ".join(c["ungrounded"]))
                                if c["ungrounded"] else ""), link])
    parts.append(_table(["case", "type", "query", "answer", "scores below 1", "trace"], rows))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def compare_html(res):
    parts = ["<!doctype html><html><head><meta charset=utf-8><title>compare</title><style>%s"
             "</style></head><body>" % CSS,
             "<h1>%s → %s</h1><p>gate: <b>%s</b></p>" % (
                 esc(res["a"]), esc(res["b"]), "passed" if res["gate"]["passed"] else "FAILED")]
    rows, cls = [], []
    for d in res["dimensions"]:
        rows.append([esc(LABELS.get(d["dimension"], d["dimension"])), fmt(d["a"]), fmt(d["b"]),
                     fmt(d["diff"]), "[%s, %s]" % (fmt(d["lo"]), fmt(d["hi"])),
                     fmt(d["tolerance"]), "FAIL" if d["failed"] else "ok"])
        cls.append([""] * 6 + ["bad" if d["failed"] else "good"])
    parts.append(_table(["dimension", "A", "B", "B − A", "95 % CI", "tolerance", "gate"], rows,
                        cls))
    parts.append("<h2>Per query type (B − A)</h2>")
    qts = sorted(res["by_query_type"])
    dims = sorted({d for q in qts for d in res["by_query_type"][q]})
    rows = [[esc(LABELS.get(d, d))] + [
        "%s [%s, %s]" % tuple(fmt(x) for x in res["by_query_type"][q].get(d, (None,) * 3))
        for q in qts] for d in dims]
    parts.append(_table(["dimension"] + qts, rows))
    parts.append("<h2>Regressed cases</h2>")
    rows = [[esc(r["id"]), esc(", ".join(r["dims"])), "<pre>%s</pre>" % esc(r["query"]),
             "<pre>%s</pre>" % esc(r["answer_a"]), "<pre>%s</pre>" % esc(r["answer_b"])]
            for r in res["regressed"]]
    parts.append(_table(["case", "dropped", "query", "A", "B"], rows))
    parts.append("</body></html>\n")
    return "\n".join(parts)
