"""plan_model.py - the capacity planner's arithmetic (docs/planner.md): for one route's traffic,
what a month costs all pay-as-you-go, provisioned for the peak, and hybrid (N provisioned units
plus overflow to pay-as-you-go window by window), for each size N on a grid; the recommendation.

Pure functions over plain values. Money and rates are fractions.Fraction, so a hand-computed
case checks exactly; the caller rounds for display.
"""

import math
from fractions import Fraction

MONTH_S = 30 * 86400  # "a month" is 30 days: the observed period is scaled to it
MONTH_HOURS = 30 * 24
MILLION = 1000000
SEED_SAVING = Fraction(40, 100)  # the seed's claim: hybrid at the average load saves > 40 %
GRID_MAX = 100  # sizes evaluated on the coarse grid (then refined around the best)


class PlanError(ValueError):
    """Bad input for the plan (the CLI says it and exits 2)."""


class Window:
    """Traffic of one time window of a route: tokens (input includes cached input), model calls,
    and the mean number of streams open (Little's law: the calls' summed duration over the
    window's length; None when the source does not say)."""

    __slots__ = ("input", "cached", "output", "calls", "concurrency")

    def __init__(self, input=0, cached=0, output=0, calls=0, concurrency=None):
        self.input, self.cached, self.output = input, cached, output
        self.calls, self.concurrency = calls, concurrency

    @property
    def tokens(self):
        return self.input + self.output


class Unit:
    """One provisioned deployment, the grid's unit: its capacity per minute (input + output
    tokens), its concurrent streams (None: not a limit), its price per hour."""

    def __init__(self, name, tpm, streams, hourly):
        if tpm <= 0:
            raise PlanError("the unit's tpm must be positive (got %s)" % tpm)
        if streams is not None and streams <= 0:
            raise PlanError("the unit's streams must be positive (got %s)" % streams)
        if hourly < 0:
            raise PlanError("the unit's hourly price must not be negative (got %s)" % hourly)
        self.name, self.tpm, self.streams, self.hourly = name, tpm, streams, Fraction(hourly)


class Prices:
    """Per-million-token prices in the plan's currency: pay-as-you-go (the standard tier) and
    the provisioned tier's own per-token price (often 0)."""

    def __init__(self, payg_in, payg_cached, payg_out, prov_in=0, prov_cached=0, prov_out=0):
        vals = [payg_in, payg_cached, payg_out, prov_in, prov_cached, prov_out]
        for v in vals:
            if v < 0:
                raise PlanError("a price must not be negative (got %s)" % v)
        (self.payg_in, self.payg_cached, self.payg_out, self.prov_in, self.prov_cached,
         self.prov_out) = [Fraction(v) for v in vals]

    def payg(self, w):
        return ((w.input - w.cached) * self.payg_in + w.cached * self.payg_cached +
                w.output * self.payg_out) / MILLION

    def provisioned(self, w):
        return ((w.input - w.cached) * self.prov_in + w.cached * self.prov_cached +
                w.output * self.prov_out) / MILLION


def served_share(w, units, unit, window_s):
    """The share of window w's traffic that N provisioned units serve: bounded by their tokens
    in the window (tpm x window length) and, when both sides are known, by their streams over
    the streams the window kept open. The rest overflows to pay-as-you-go."""
    if w.tokens == 0 and not w.concurrency:
        return Fraction(1)
    share = Fraction(1)
    if w.tokens:
        share = min(share, Fraction(units * unit.tpm * window_s, 60 * w.tokens))
    if unit.streams and w.concurrency:
        share = min(share, Fraction(units * unit.streams) / Fraction(w.concurrency))
    return share


def units_for(w, unit, window_s):
    """The fewest units that serve all of window w."""
    need = Fraction(w.tokens * 60, unit.tpm * window_s)
    if unit.streams and w.concurrency:
        need = max(need, Fraction(w.concurrency) / unit.streams)
    return math.ceil(need)


def evaluate(windows, window_s, unit, prices, units, payg_latency_ms=0):
    """Hybrid at `units` units over the observed windows, scaled to a month: its cost (fixed
    + provisioned tokens + overflow), the share of tokens that overflow, the expected added
    latency (overflow share x pay-as-you-go's added latency)."""
    scale = Fraction(MONTH_S, window_s * len(windows))
    fixed = units * unit.hourly * MONTH_HOURS
    variable = Fraction(0)
    total = over = 0
    for w in windows:
        s = served_share(w, units, unit, window_s)
        variable += s * prices.provisioned(w) + (1 - s) * prices.payg(w)
        total += w.tokens
        over += (1 - s) * w.tokens
    share = Fraction(over, total) if total else Fraction(0)
    return {"units": units, "tpm": units * unit.tpm,
            "streams": units * unit.streams if unit.streams else None,
            "fixed": fixed, "variable": variable * scale, "cost": fixed + variable * scale,
            "overflow_share": share, "added_latency_ms": share * payg_latency_ms}


def grid(peak, avg, sizes=None):
    """The sizes to evaluate: the given ones, or 0..peak (every integer up to GRID_MAX sizes,
    evenly spaced beyond), always with the average's and the peak's size."""
    if sizes:
        return sorted(set(sizes))
    step = max(1, math.ceil(peak / GRID_MAX))
    return sorted(set(range(0, peak + 1, step)) | {0, avg, peak})


def plan(windows, window_s, unit, prices, payg_latency_ms=0, max_latency_ms=None, sizes=None):
    """The whole plan of one route. windows: contiguous windows of window_s seconds (empty ones
    included: they are the observed period). Returns a dict (see docs/planner.md)."""
    if not windows:
        raise PlanError("no traffic: the observed period is empty")
    if payg_latency_ms < 0 or (max_latency_ms is not None and max_latency_ms < 0):
        raise PlanError("latencies must not be negative")
    tokens = sum(w.tokens for w in windows)
    peak = max(units_for(w, unit, window_s) for w in windows)
    mean = Window(Fraction(sum(w.input for w in windows), len(windows)), 0,
                  Fraction(sum(w.output for w in windows), len(windows)))
    conc = [w.concurrency for w in windows if w.concurrency is not None]
    if conc:
        mean.concurrency = Fraction(sum(Fraction(c) for c in conc), len(windows))
    avg = units_for(mean, unit, window_s)

    def ev(n):
        return evaluate(windows, window_s, unit, prices, n, payg_latency_ms)

    rows = {n: ev(n) for n in grid(peak, avg, sizes)}
    best = _best(rows, max_latency_ms)
    if best is not None and not sizes:
        # the cost is convex in the size: the best integer size lies between the best grid
        # point's neighbours
        keys = sorted(rows)
        i = keys.index(best)
        for n in range(keys[max(0, i - 1)], keys[min(len(keys) - 1, i + 1)] + 1):
            rows.setdefault(n, ev(n))
        best = _best(rows, max_latency_ms)
    payg = ev(0)
    peak_row = rows.get(peak) or ev(peak)
    avg_row = rows.get(avg) or ev(avg)
    return {
        "window_s": window_s, "windows": len(windows),
        "observed_s": window_s * len(windows), "scale": Fraction(MONTH_S, window_s * len(windows)),
        "tokens": tokens, "peak_units": peak, "avg_units": avg,
        "payg_cost": payg["cost"], "peak_cost": peak_row["cost"],
        "rows": [rows[n] for n in sorted(rows)],
        "recommended": rows[best] if best is not None else None,
        "average": avg_row,
    }


def _best(rows, max_latency_ms):
    ok = [r for r in rows.values()
          if max_latency_ms is None or r["added_latency_ms"] <= max_latency_ms]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["cost"], r["units"]))["units"]


def saving(cost, baseline):
    """1 - cost / baseline (a share; None when the baseline is 0)."""
    return None if not baseline else 1 - Fraction(cost) / baseline


def seed_claim(p):
    """Where "a hybrid sized to the average load saves more than 40 %" holds: at the average's
    size against each baseline, and the sizes of the grid where it does."""
    avg = p["average"]
    out = {"avg_units": p["avg_units"],
           "saving_vs_payg": saving(avg["cost"], p["payg_cost"]),
           "saving_vs_peak": saving(avg["cost"], p["peak_cost"])}
    # the unit price under which the average's size saves more than 40 % vs all PAYG: its
    # fixed part is units x hourly x 720 and must stay below 60 % of PAYG minus its variable part
    room = (1 - SEED_SAVING) * p["payg_cost"] - avg["variable"]
    out["hourly_for_claim_vs_payg"] = (max(Fraction(0), room / (p["avg_units"] * MONTH_HOURS))
                                       if p["avg_units"] else None)
    for key, base in (("payg", p["payg_cost"]), ("peak", p["peak_cost"])):
        s = out["saving_vs_" + key]
        out["holds_vs_" + key] = s is not None and s > SEED_SAVING
        out["sizes_over_40_vs_" + key] = [r["units"] for r in p["rows"]
                                          if (saving(r["cost"], base) or 0) > SEED_SAVING]
    return out
