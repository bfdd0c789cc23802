"""vibe.py - the vibe-check panel's side of trilemma-eval: make a session from two eval runs over
the same golden set (POST /v1/vibe/sessions, then the pairs in batches that fit the API's 16 KiB
bodies), and rate the votes: Bradley-Terry strengths with bootstrap CIs (ties as half wins),
agreement between voters, and the win rate per query type."""

import json
import os
import sys

import runner
import scorers as S

BODY_MAX = 15000  # bytes of one POST body (the server takes 16 KiB)
ANSWER_MAX = 3000  # characters of an answer in a pair (longer ones are cut, marked)


def _cut(s):
    return s if len(s) <= ANSWER_MAX else s[:ANSWER_MAX] + " […]"


def pairs_of(run_a, run_b):
    """The cases both runs answered (same case id), as items of a session."""
    b = {c["id"]: c for c in run_b["cases"]}
    out = []
    for c in run_a["cases"]:
        if c["id"] in b and c["answer"] and b[c["id"]]["answer"]:
            hist = [h if isinstance(h, str) else h.get("content", "") for h in c["history"]]
            out.append({"case_id": c["id"], "query_type": c["expected_query_type"],
                        "query": c["query"], "history": hist, "answer_a": _cut(c["answer"]),
                        "answer_b": _cut(b[c["id"]]["answer"])})
    return out


def upload(url, token, run_a, run_b, name="", created_by="trilemma-eval"):
    """Create a session from two runs; returns (session id, number of pairs)."""
    if run_a["set"].get("sha256") != run_b["set"].get("sha256"):
        raise SystemExit("trilemma-eval: the two runs are over different golden sets")
    base = url.rstrip("/")
    sid = runner.http_json(base + "/v1/vibe/sessions", token, {
        "name": name or "vibe %s" % (run_a["set"].get("name") or ""),
        "set": run_a["set"].get("name") or "", "version_a": run_a["name"],
        "version_b": run_b["name"], "created_by": created_by})["id"]
    items, batch, size = pairs_of(run_a, run_b), [], 20
    for it in items:
        n = len(json.dumps(it, ensure_ascii=False).encode())
        if batch and size + n > BODY_MAX:
            runner.http_json("%s/v1/vibe/sessions/%d/items" % (base, sid), token, {"items": batch})
            batch, size = [], 20
        batch.append(it)
        size += n + 1
    if batch:
        runner.http_json("%s/v1/vibe/sessions/%d/items" % (base, sid), token, {"items": batch})
    return sid, len(items)


def analyse(data, seed=14, n_boot=500):
    """Ratings from the votes endpoint's answer: {"version_a", "version_b", "votes": [...]}."""
    a, b = data["version_a"], data["version_b"]
    votes = [{"a": a, "b": b, "choice": v["choice"], "item": v["case_id"], "voter": v["voter"],
              "query_type": v.get("query_type", "")} for v in data["votes"]]
    out = {"session": data.get("session"), "versions": [a, b], "votes": len(votes),
           "voters": len({v["voter"] for v in votes}),
           "choices": {c: sum(1 for v in votes if v["choice"] == c)
                       for c in ("a", "b", "tie", "both_bad")}}
    if not votes:
        return out
    bt = S.bt_bootstrap(votes, S.new_rng(seed), n=n_boot)
    out["bradley_terry"] = {k: {"log_strength": v[0], "lo": v[1], "hi": v[2]} for k, v in bt.items()}
    p = S.bradley_terry(S.votes_to_games(votes))
    out["p_b_beats_a"] = p[b] / (p[a] + p[b])
    out["agreement"] = S.voter_agreement(votes)

    def win_rate(vs):  # B's wins, ties and both-bad as half
        return sum(1.0 if v["choice"] == "b" else 0.0 if v["choice"] == "a" else 0.5
                   for v in vs) / len(vs)

    out["win_rate_b"] = win_rate(votes)
    out["by_query_type"] = {}
    for qt in sorted({v["query_type"] for v in votes}):
        vs = [v for v in votes if v["query_type"] == qt]
        out["by_query_type"][qt] = {"votes": len(vs), "win_rate_b": win_rate(vs),
                                    "both_bad": sum(1 for v in vs if v["choice"] == "both_bad")}
    return out


def text(r):
    a, b = r["versions"]
    lines = ["vibe-check session %s: %d votes by %d voters (%s)" % (
        r["session"], r["votes"], r["voters"], ", ".join("%s %d" % kv for kv in r["choices"].items()))]
    if not r["votes"]:
        return lines[0]
    lines.append("| version | Bradley-Terry log-strength | 95 % CI |")
    lines.append("|---|---:|---|")
    for k in (a, b):
        v = r["bradley_terry"][k]
        lines.append("| %s | %+.3f | [%+.3f, %+.3f] |" % (k, v["log_strength"], v["lo"], v["hi"]))
    lines.append("P(%s preferred to %s) = %.3f; %s's win rate %.3f (ties half)" % (
        b, a, r["p_b_beats_a"], b, r["win_rate_b"]))
    ag = r["agreement"]
    lines.append("agreement: %s" % ("no case judged by two voters" if not ag["items"] else
                                    "%d cases judged by 2+ voters, pairwise %.3f, Fleiss kappa %s"
                                    % (ag["items"], ag["pairwise"],
                                       "–" if ag["kappa"] is None else "%.3f" % ag["kappa"])))
    lines.append("win rate of %s per query type:" % b)
    for qt, v in r["by_query_type"].items():
        lines.append("  %-15s %.3f (%d votes, %d both bad)" % (qt, v["win_rate_b"], v["votes"],
                                                              v["both_bad"]))
    return "\n".join(lines)


def main(a):
    token = a.admin_token or os.environ.get("TRILEMMA_ADMIN_TOKEN")
    if a.upload:
        if not a.url or not token:
            raise SystemExit("trilemma-eval: --upload needs --url and the admin token")
        runs = [json.load(open(p, encoding="utf-8")) for p in a.upload]
        sid, n = upload(a.url, token, runs[0], runs[1], a.name)
        print("vibe: session %d with %d pairs; panel page: %s/admin/vibe.html#session=%d" % (
            sid, n, a.url.rstrip("/"), sid))
        return 0
    if a.votes:
        data = json.load(open(a.votes, encoding="utf-8"))
    elif a.url and a.session and token:
        data = runner.http_json("%s/v1/vibe/sessions/%s/votes" % (a.url.rstrip("/"), a.session),
                                token)
    else:
        raise SystemExit("trilemma-eval: give --votes FILE, or --url, --session and the token")
    r = analyse(data, a.seed)
    print(text(r))
    if a.json:
        json.dump(r, open(a.json, "w", encoding="utf-8"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(0)
