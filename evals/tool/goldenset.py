"""goldenset.py - the golden-set case format (evals/README.md): load and check a JSONL set, a
fixed stratified subset, and production rows (golden_cases) turned into cases."""

import hashlib
import json

QUERY_TYPES = ("product_search", "product_fact", "comparison", "policy", "order_status",
               "chitchat", "other")
VERBOSITY = ("short", "medium", "long")
TAILS = ("head", "long_tail")
REQUIRED = ("id", "query", "expected_query_type")


class BadSet(Exception):
    pass


def check_case(c, where):
    """Raise BadSet naming the line and the field when a case is malformed."""
    if not isinstance(c, dict):
        raise BadSet("%s: a case is a JSON object" % where)
    for k in REQUIRED:
        if not isinstance(c.get(k), str) or not c[k]:
            raise BadSet("%s: %s must be a non-empty string" % (where, k))
    if c["expected_query_type"] not in QUERY_TYPES:
        raise BadSet("%s: expected_query_type %r is not one of %s" % (
            where, c["expected_query_type"], ", ".join(QUERY_TYPES)))
    if c.get("verbosity", "medium") not in VERBOSITY:
        raise BadSet("%s: verbosity must be one of %s" % (where, ", ".join(VERBOSITY)))
    if c.get("tail", "head") not in TAILS:
        raise BadSet("%s: tail must be head or long_tail" % where)
    for r in c.get("relevant", []):
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or \
                not isinstance(r.get("grade"), int) or not 0 <= r["grade"] <= 3:
            raise BadSet("%s: relevant[] items are {id: string, grade: 0-3}" % where)
    for f in c.get("facts", []):
        if not isinstance(f, dict) or "value" not in f or "source" not in f:
            raise BadSet("%s: facts[] items need value and source" % where)
    if not isinstance(c.get("expected_tools", []), list):
        raise BadSet("%s: expected_tools is a list of tool names" % where)
    for h in c.get("history", []):
        if not isinstance(h, (str, dict)):
            raise BadSet("%s: history[] items are strings or {role, content}" % where)


def load(path, include_retired=False):
    """The cases of a JSONL file, checked; ids must be unique. Retired cases (a "retired"
    member) are skipped unless asked for."""
    out, seen = [], set()
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise BadSet("cannot read %s: %s" % (path, e.strerror))
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = "%s:%d" % (path, n)
            try:
                c = json.loads(line)
            except ValueError as e:
                raise BadSet("%s: not JSON (%s)" % (where, e))
            check_case(c, where)
            if c["id"] in seen:
                raise BadSet("%s: duplicate id %s" % (where, c["id"]))
            seen.add(c["id"])
            if c.get("retired") and not include_retired:
                continue
            out.append(c)
    return out


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def subset(cases, n):
    """A fixed subset of n cases spread over query types and head/tail: round robin over the
    (type, tail) strata in the set's order, so the same set gives the same subset."""
    strata = {}
    for c in cases:
        strata.setdefault((c["expected_query_type"], c.get("tail", "head")), []).append(c)
    keys = sorted(strata)
    out, i = [], 0
    while len(out) < min(n, len(cases)):
        for k in keys:
            if i < len(strata[k]) and len(out) < n:
                out.append(strata[k][i])
        i += 1
    order = {id(c): j for j, c in enumerate(cases)}
    return sorted(out, key=lambda c: order[id(c)])


def export_rows(rows):
    """golden_cases rows (the admin API's answer: id, set_name, status, source_turn_id,
    case_json, note, ...) to cases of the JSONL format: the stored case, with the id made
    stable (prod-<row id>) and the production defaults filled in."""
    out = []
    for r in rows:
        c = dict(r["case_json"])
        c.setdefault("id", "prod-%d" % r["id"])
        c["id"] = str(c["id"]) if str(c["id"]).startswith("prod-") else "prod-%d" % r["id"]
        c.setdefault("history", [])
        c.setdefault("expected_tools", [])
        c.setdefault("relevant", [])
        c.setdefault("facts", [])
        c.setdefault("verbosity", "medium")
        c.setdefault("tail", "long_tail")
        c["source"] = "production"
        c["set"] = r.get("set_name", "production")
        if r.get("source_turn_id"):
            c["source_turn_id"] = r["source_turn_id"]
        if r.get("note"):
            c["note"] = r["note"]
        check_case(c, "golden_cases row %s" % r["id"])
        out.append(c)
    return out
