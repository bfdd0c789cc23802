"""plan_inputs.py - what the capacity planner reads (docs/planner.md): recorded traffic (a load
test report from trilemma-load, or the store's GET /v1/traffic, saved or fetched), the agents
file's [capacity NAME] sections, and the price table (config/prices.csv).

Every reader turns bad input into a PlanError that names the file and what is wrong.
"""

import csv
import datetime
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from fractions import Fraction

from plan_model import PlanError, Window

DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def decimal(text, what):
    """A non-negative decimal number, exactly (Fraction('4.00') == 4)."""
    t = str(text).strip()
    if t.startswith("-"):
        raise PlanError("%s must not be negative (got %s)" % (what, t))
    if not DECIMAL.match(t):
        raise PlanError("%s is not a decimal number (got %r)" % (what, t))
    return Fraction(t)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise PlanError("cannot read %s: %s" % (path, e.strerror or e))
    except (ValueError, UnicodeDecodeError) as e:
        raise PlanError("%s is not valid JSON: %s" % (path, e))


# ---- traffic ----------------------------------------------------------------------------------


class Traffic:
    """Recorded traffic: per route ("provider/model"), contiguous windows of window_s seconds
    over one common observed period; notes say how it was read."""

    def __init__(self, source, window_s, routes, notes, start=None):
        self.source, self.window_s, self.routes, self.notes = source, window_s, routes, notes
        self.start = start


def _series(tl, name, n, path):
    v = tl.get(name)
    if not isinstance(v, list) or len(v) != n or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        raise PlanError("%s: timeline.%s is not a list of %d counts" % (path, name, n))
    return v


def from_load_report(doc, path, route, window_s):
    """A trilemma-load report: its per-second timeline (turn_end usage of every completed turn,
    summed over the turn's calls), cut into windows of window_s seconds. The turns in flight at
    the end of each second (started minus completed so far) stand for the streams open."""
    tl = doc.get("timeline")
    if not isinstance(tl, dict) or not isinstance(tl.get("t"), list):
        raise PlanError("%s: no timeline (not a trilemma-load report?)" % path)
    n = len(tl["t"])
    if "input_tokens" not in tl:
        raise PlanError("%s has no timeline.input_tokens: it was written by a trilemma-load "
                        "older than the planner (only output tokens per second); record the run "
                        "again (docs/loadtest.md)" % path)
    inp = _series(tl, "input_tokens", n, path)
    cached = _series(tl, "cached_input_tokens", n, path) if "cached_input_tokens" in tl \
        else [0] * n
    out = _series(tl, "output_tokens", n, path)
    started = _series(tl, "turns_started", n, path)
    done = _series(tl, "turns_completed", n, path)
    if window_s < 1 or window_s > 3600:
        raise PlanError("--window must be 1..3600 seconds for a load report")
    nwin = n // window_s
    if nwin == 0:
        raise PlanError("%s: %d s of timeline is shorter than one %d s window" %
                        (path, n, window_s))
    wins, inflight, run = [], [], 0
    for s in range(n):
        run += started[s] - done[s]
        inflight.append(max(run, 0))
    for k in range(nwin):
        sl = slice(k * window_s, (k + 1) * window_s)
        wins.append(Window(sum(inp[sl]), sum(cached[sl]), sum(out[sl]), sum(done[sl]),
                           Fraction(sum(inflight[sl]), window_s)))
    notes = ["load test report %s (%s), %d s of timeline in %d windows of %d s" %
             (os.path.basename(path), doc.get("started_at", "?"), n, nwin, window_s),
             "tokens are turn_end usage per turn (every call of the turn, whatever its model), "
             "counted in the second the turn ended; streams open = turns in flight"]
    if n % window_s:
        notes.append("the last %d s (a partial window) are left out" % (n % window_s))
    return Traffic(path, window_s, {route: wins}, notes, doc.get("started_at"))


def _iso(t):
    try:
        return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        raise PlanError("bad bucket time %r (expected YYYY-MM-DDTHH:MM:SSZ)" % (t,))


def _count(b, key, where):
    v = b.get(key, 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise PlanError("%s: %s is not a count" % (where, key))
    return v


def from_traffic(doc, path, window_s=None, route_filter=None):
    """The store's GET /v1/traffic answer: buckets per (provider, model, tier); the tiers of a
    route are summed (provisioned traffic is demand too). The observed period runs from the
    first to the last bucket with traffic, empty buckets in between included."""
    bucket_s = doc.get("bucket_s")
    if bucket_s not in (60, 3600) or not isinstance(doc.get("routes"), list):
        raise PlanError("%s: not a /v1/traffic answer (bucket_s, routes)" % path)
    window_s = window_s or bucket_s
    if window_s % bucket_s:
        raise PlanError("--window %d is not a multiple of the traffic's %d s buckets" %
                        (window_s, bucket_s))
    per = {}
    for r in doc["routes"]:
        if not isinstance(r, dict) or not isinstance(r.get("buckets"), list):
            raise PlanError("%s: a route without buckets" % path)
        name = "%s/%s" % (r.get("provider"), r.get("model"))
        if route_filter and name not in route_filter:
            continue
        acc = per.setdefault(name, {})
        for b in r["buckets"]:
            where = "%s: %s bucket %r" % (path, name, b.get("t") if isinstance(b, dict) else b)
            if not isinstance(b, dict):
                raise PlanError(where + " is not an object")
            t = int(_iso(b.get("t")).timestamp()) // window_s * window_s
            w = acc.setdefault(t, [0, 0, 0, 0, 0])
            for i, k in enumerate(("input_tokens", "cached_input_tokens", "output_tokens",
                                   "calls", "duration_ms")):
                w[i] += _count(b, k, where)
    times = [t for acc in per.values() for t in acc]
    if not times:
        raise PlanError("%s: no traffic in %s..%s" % (path, doc.get("from"), doc.get("to")))
    t0, t1 = min(times), max(times)
    nwin = (t1 - t0) // window_s + 1
    routes = {}
    for name, acc in sorted(per.items()):
        wins = []
        for k in range(nwin):
            i, c, o, calls, dur = acc.get(t0 + k * window_s, [0, 0, 0, 0, 0])
            wins.append(Window(i, c, o, calls, Fraction(dur, window_s * 1000)))
        routes[name] = wins
    start = datetime.datetime.fromtimestamp(t0, datetime.timezone.utc)
    notes = ["store traffic %s..%s, %d s buckets; observed %s to %s (%d windows of %d s)" %
             (doc.get("from"), doc.get("to"), bucket_s, start.strftime("%Y-%m-%d %H:%M"),
              datetime.datetime.fromtimestamp(t1 + window_s, datetime.timezone.utc).strftime(
                  "%Y-%m-%d %H:%M"), nwin, window_s),
             "calls are bucketed by their turn's start; streams open = summed call duration / "
             "window length (Little's law)"]
    if bucket_s == 3600:
        notes.append("hourly buckets spread each hour's tokens evenly: overflow within the "
                      "hour is not seen (use bucket=minute)")
    return Traffic(path, window_s, routes, notes, start.isoformat())


def fetch_traffic(url, token, date_from, date_to, bucket):
    """GET {url}/v1/traffic with the admin token; the parsed answer."""
    q = {"bucket": bucket}
    if date_from:
        q["from"] = date_from
    if date_to:
        q["to"] = date_to
    full = url.rstrip("/") + "/v1/traffic?" + urllib.parse.urlencode(q)
    req = urllib.request.Request(full, headers={"Authorization": "Bearer " + (token or "")})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")[:300]
        raise PlanError("%s answered %d: %s" % (full, e.code, body.strip()))
    except (urllib.error.URLError, OSError) as e:
        raise PlanError("cannot reach %s: %s" % (full, getattr(e, "reason", e)))
    except ValueError as e:
        raise PlanError("%s did not answer JSON: %s" % (full, e))


def load_traffic(source, args, route, report_route=None):
    """SOURCE is a file (a load report or a saved /v1/traffic answer) or an http(s) URL of a
    trilemmad with a store. route: the routes to keep (None: all); a load report names none, so
    it is report_route's (the one [capacity] section's) unless route gives one."""
    if re.match(r"^https?://", source):
        doc = fetch_traffic(source, os.environ.get("TRILEMMA_ADMIN_TOKEN"), args.date_from,
                            args.date_to, args.bucket)
        return from_traffic(doc, source, args.window, route)
    doc = _read_json(source)
    if not isinstance(doc, dict):
        raise PlanError("%s: expected a JSON object" % source)
    if doc.get("tool") == "trilemma-load":
        route = route or report_route
        if not route or len(route) != 1:
            raise PlanError("a load report does not name its model: give --route PROVIDER/MODEL "
                            "(or an agents file with one [capacity] section)")
        return from_load_report(doc, source, route[0], args.window or 60)
    return from_traffic(doc, source, args.window, route)


# ---- the agents file's [capacity NAME] sections -------------------------------------------------


def _ini_value(line):
    """inih's rule (base/ini_strict.c): a ';' preceded by whitespace starts a comment."""
    m = re.search(r"\s;", line)
    return (line[:m.start()] if m else line).strip()


def read_capacity(path):
    """The [capacity NAME] sections of an agents file: {name: {key: value}}."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise PlanError("cannot read %s: %s" % (path, e.strerror or e))
    except UnicodeDecodeError:
        raise PlanError("%s is not UTF-8 text" % path)
    out, cur = {}, None
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            m = re.match(r"^\[\s*capacity\s+([a-z0-9_-]{1,31})\s*\]$", _ini_value(line))
            cur = out.setdefault(m.group(1), {"_line": no}) if m else None
            if cur is None and re.match(r"^\[\s*capacity\b", line):
                raise PlanError("%s:%d: bad section name %s (capacity NAME: 1..31 of a-z 0-9 _ -)"
                                % (path, no, line))
            continue
        if cur is not None:
            if "=" not in line:
                raise PlanError("%s:%d: expected key = value" % (path, no))
            k, v = line.split("=", 1)
            cur[k.strip()] = _ini_value(v)
    return out


def capacity_unit(path, name, sec):
    """One section as (route, unit fields): tpm, streams, hourly price, currency, region. (The
    server refuses keys it does not know, so the PAYG latency is a flag, not a key here.)"""
    where = "%s [capacity %s]" % (path, name)
    if "/" not in sec.get("model", ""):
        raise PlanError("%s: model must be provider/model" % where)
    for k in ("tpm", "hourly_price"):
        if k not in sec:
            raise PlanError("%s: %s is missing" % (where, k))
    cur = sec.get("currency", "USD")
    if cur not in ("USD", "INR"):
        raise PlanError("%s: currency must be USD or INR (got %r)" % (where, cur))
    tpm = decimal(sec["tpm"], where + " tpm")
    streams = decimal(sec["streams"], where + " streams") if "streams" in sec else None
    if tpm == 0 or tpm.denominator != 1 or (streams is not None and
                                            (streams == 0 or streams.denominator != 1)):
        raise PlanError("%s: tpm and streams must be positive integers" % where)
    return sec["model"], {
        "name": name, "tpm": int(tpm), "streams": int(streams) if streams else None,
        "hourly": decimal(sec["hourly_price"], where + " hourly_price"), "currency": cur,
        "region": sec.get("region", "")}


# ---- prices.csv ---------------------------------------------------------------------------------


def read_prices(path, today=None):
    """{(provider, model, tier): (currency, input, cached_input, output)} per million tokens, the
    row in effect today (the latest effective_from not after it)."""
    today = today or datetime.date.today().isoformat()
    best = {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise PlanError("cannot read %s: %s" % (path, e.strerror or e))
    except (UnicodeDecodeError, csv.Error) as e:
        raise PlanError("%s: %s" % (path, e))
    for no, row in enumerate(rows, 1):
        if not row or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 9:
            raise PlanError("%s:%d: expected 9 columns, got %d" % (path, no, len(row)))
        prov, model, tier, eff, cur = (c.strip() for c in row[:5])
        if cur not in ("USD", "INR"):
            raise PlanError("%s:%d: currency must be USD or INR" % (path, no))
        where = "%s:%d" % (path, no)
        vals = (decimal(row[5], where + " input"), decimal(row[6], where + " cached_input"),
                decimal(row[8], where + " output"))
        key = (prov, model, tier)
        if eff <= today and (key not in best or best[key][0] < eff):
            best[key] = (eff, cur) + vals
    return {k: v[1:] for k, v in best.items()}


def convert(amount, frm, to, usd_to_inr):
    if frm == to:
        return amount
    return amount * usd_to_inr if (frm, to) == ("USD", "INR") else amount / usd_to_inr

