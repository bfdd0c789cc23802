#!/usr/bin/python3
"""trilemma-plan - how much provisioned capacity to buy (docs/planner.md). Reads recorded
traffic (a trilemma-load report, or the store's GET /v1/traffic: a saved answer or a server's
URL) and prints, for each route and each provisioned size, the monthly cost of all
pay-as-you-go, provisioned for the peak and hybrid (that size plus overflow to pay-as-you-go),
the share of traffic that overflows and the expected added latency; it recommends a size.

  trilemma-plan SOURCE [--agents FILE] [--prices FILE] [--route PROVIDER/MODEL]...
                [--unit-tpm N --hourly-price X [--unit-streams N] [--currency USD|INR]]
                [--payg-input X --payg-output X [--payg-cached-input X]]
                [--payg-latency-ms N] [--max-added-latency-ms N] [--window S] [--sizes N,N,...]
                [--from DATE --to DATE --bucket minute|hour] [--json] [--html FILE]

Exit codes: 0 fine, 2 bad input (a message on stderr says what).
"""

import argparse
import json
import os
import sys
from fractions import Fraction

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)

import plan_html  # noqa: E402
import plan_inputs as I  # noqa: E402
import plan_model as M  # noqa: E402


def die(msg):
    print("trilemma-plan: %s" % msg, file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="trilemma-plan", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a trilemma-load report, a saved /v1/traffic answer, or the "
                   "http(s) URL of a trilemmad with a store (admin token: TRILEMMA_ADMIN_TOKEN)")
    p.add_argument("--agents", help="agents file: its [capacity NAME] sections are the units")
    p.add_argument("--prices", help="price table (config/prices.csv): tiers standard (PAYG) "
                   "and provisioned")
    p.add_argument("--route", action="append", help="plan this provider/model only (repeatable)")
    p.add_argument("--unit-tpm", help="tokens per minute of one unit (overrides [capacity])")
    p.add_argument("--unit-streams", help="concurrent streams of one unit")
    p.add_argument("--hourly-price", help="price of one unit per hour")
    p.add_argument("--currency", choices=("USD", "INR"), help="the plan's currency")
    p.add_argument("--payg-input", help="PAYG price per million input tokens")
    p.add_argument("--payg-cached-input", help="... per million cached input tokens")
    p.add_argument("--payg-output", help="... per million output tokens")
    p.add_argument("--usd-to-inr", default="84.0", help="exchange rate (default 84.0)")
    p.add_argument("--payg-latency-ms", help="latency PAYG adds over provisioned (another "
                   "region; default 0)")
    p.add_argument("--max-added-latency-ms", help="recommend only sizes that add at most this")
    p.add_argument("--window", type=int, help="overflow is reckoned per window of this many "
                   "seconds (default 60; a store's hourly buckets: 3600)")
    p.add_argument("--sizes", help="evaluate these sizes (units, comma-separated) only")
    p.add_argument("--from", dest="date_from", help="store URL: first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", help="store URL: last day (YYYY-MM-DD)")
    p.add_argument("--bucket", default="minute", choices=("minute", "hour"))
    p.add_argument("--json", action="store_true", help="JSON on stdout instead of the table")
    p.add_argument("--html", help="write an HTML report with the cost curve here")
    return p.parse_args(argv)


def dec_flag(args, name):
    v = getattr(args, name)
    return None if v is None else I.decimal(v, "--" + name.replace("_", "-"))


def units_config(args):
    """{route: unit fields} from the agents file, with the flags over them (or alone)."""
    units = {}
    if args.agents:
        for name, sec in I.read_capacity(args.agents).items():
            route, u = I.capacity_unit(args.agents, name, sec)
            units.setdefault(route, u)
    flags = {"tpm": dec_flag(args, "unit_tpm"), "streams": dec_flag(args, "unit_streams"),
             "hourly": dec_flag(args, "hourly_price")}
    for k in ("tpm", "streams"):
        if flags[k] is not None and (flags[k] == 0 or flags[k].denominator != 1):
            die("--unit-%s must be a positive integer" % k)
        if flags[k] is not None:
            flags[k] = int(flags[k])
    return units, flags


def resolve(route, units, flags, prices, args):
    """Unit, prices and PAYG latency of one route in the plan's currency; None when the route
    has no unit (neither a [capacity] section nor --unit-tpm and --hourly-price)."""
    sec = dict(units.get(route) or {})
    for k, v in flags.items():
        if v is not None:
            sec[k] = v
    if "tpm" not in sec or "hourly" not in sec:
        return None
    sec.setdefault("name", "flags")
    sec.setdefault("streams", None)
    cur = args.currency or sec.get("currency") or "USD"
    rate = I.decimal(args.usd_to_inr, "--usd-to-inr")
    if rate == 0:
        die("--usd-to-inr must be positive")
    hourly = I.convert(sec["hourly"], sec.get("currency") or cur, cur, rate)
    provider, _, model = route.partition("/")
    payg_flags = [dec_flag(args, k) for k in ("payg_input", "payg_cached_input", "payg_output")]
    if payg_flags[0] is not None or payg_flags[2] is not None:
        if payg_flags[0] is None or payg_flags[2] is None:
            die("give both --payg-input and --payg-output")
        payg = (payg_flags[0], payg_flags[1] if payg_flags[1] is not None else payg_flags[0],
                payg_flags[2])
        src = "flags"
    else:
        row = prices.get((provider, model, "standard"))
        if not row:
            die("no pay-as-you-go price for %s: give --prices (a standard row) or --payg-input "
                "and --payg-output" % route)
        payg = tuple(I.convert(v, row[0], cur, rate) for v in row[1:])
        src = "prices.csv (standard, %s)" % row[0]
    prow = prices.get((provider, model, "provisioned"))
    prov = tuple(I.convert(v, prow[0], cur, rate) for v in prow[1:]) if prow else (0, 0, 0)
    lat = dec_flag(args, "payg_latency_ms") or 0
    unit = M.Unit(sec["name"], sec["tpm"], sec["streams"], hourly)
    return {"unit": unit, "prices": M.Prices(*payg, *prov), "currency": cur,
            "region": sec.get("region", ""), "payg_latency_ms": lat, "price_source": src,
            "rate": rate}


def routes_for_report(args, units):
    if args.route:
        return args.route
    return list(units) if len(units) == 1 else None


def run(args):
    if args.window is not None and args.window < 1:
        die("--window must be a positive number of seconds")
    units, flags = units_config(args)
    prices = I.read_prices(args.prices) if args.prices else {}
    traffic = I.load_traffic(args.source, args, args.route, routes_for_report(args, units))
    sizes = None
    if args.sizes:
        try:
            sizes = [int(s) for s in args.sizes.split(",")]
        except ValueError:
            die("--sizes must be integers separated by commas")
        if any(s < 0 for s in sizes):
            die("--sizes must not be negative")
    max_lat = dec_flag(args, "max_added_latency_ms")
    out = {"source": traffic.source, "notes": traffic.notes, "month_days": 30, "routes": [],
           "skipped": []}
    for route, windows in traffic.routes.items():
        cfg = resolve(route, units, flags, prices, args)
        if cfg is None:
            out["skipped"].append(route)
            continue
        p = M.plan(windows, traffic.window_s, cfg["unit"], cfg["prices"], cfg["payg_latency_ms"],
                   max_lat, sizes)
        out["routes"].append({"route": route, "cfg": cfg, "plan": p, "seed": M.seed_claim(p)})
    if not out["routes"]:
        die("no route to plan: %s has traffic for %s, and none has a [capacity] section "
            "(--agents) or --unit-tpm and --hourly-price" %
            (traffic.source, ", ".join(traffic.routes) or "nothing"))
    return out


# ---- output -----------------------------------------------------------------------------------


def money(x):
    return "{:,.2f}".format(float(x))


def pct(x):
    """A share as a percentage; 2 decimals below 1 % so that a small overflow does not read 0."""
    if x is None:
        return "-"
    v = float(x) * 100
    return "%.2f %%" % v if 0 < abs(v) < 1 else "%.1f %%" % v


def why(r):
    """The recommendation in a sentence."""
    p, cur = r["plan"], r["cfg"]["currency"]
    rec = p["recommended"]
    if rec is None:
        return ("no size keeps the added latency under --max-added-latency-ms; "
                "even %d units (the peak) add %.1f ms" %
                (p["peak_units"], float(p["rows"][-1]["added_latency_ms"])))
    what = ("no provisioned capacity (all pay-as-you-go)" if rec["units"] == 0 else
            "%d unit%s (%s tpm)" % (rec["units"], "s" * (rec["units"] != 1),
                                    "{:,}".format(rec["tpm"])))
    return ("buy %s: %s %s a month, the lowest on the grid; saves %s vs all pay-as-you-go "
            "(%s) and %s vs provisioned for the peak (%d units, %s); %s of the tokens "
            "overflow to pay-as-you-go, adding %.1f ms on average" %
            (what, money(rec["cost"]), cur, pct(M.saving(rec["cost"], p["payg_cost"])),
             money(p["payg_cost"]), pct(M.saving(rec["cost"], p["peak_cost"])),
             p["peak_units"], money(p["peak_cost"]), pct(rec["overflow_share"]),
             float(rec["added_latency_ms"])))


def seed_text(r):
    s = r["seed"]

    grid = [row["units"] for row in r["plan"]["rows"]]

    def span(xs):
        """The sizes as runs of neighbours on the evaluated grid: "3..7, 9 units"."""
        if not xs:
            return "no size"
        runs, pos = [], [grid.index(x) for x in xs]
        for i, x in zip(pos, xs):
            if runs and i == runs[-1][2] + 1:
                runs[-1][1:] = [x, i]
            else:
                runs.append([x, x, i])
        return ", ".join("%d..%d" % (a, b) if a != b else "%d" % a for a, b, _ in runs) + \
            " units"

    price = ""
    if s["hourly_for_claim_vs_payg"] is not None:
        price = ("; vs pay-as-you-go it holds at that size while a unit costs less than %s %s "
                 "an hour (now %s)" % (money(s["hourly_for_claim_vs_payg"]),
                                       r["cfg"]["currency"], money(r["cfg"]["unit"].hourly)))
    return ("the seed's claim (a hybrid sized to the average load saves > 40 %%): at the "
            "average's size, %d units, it saves %s vs all pay-as-you-go (%s) and %s vs "
            "peak-provisioned (%s); > 40 %% vs pay-as-you-go at %s, vs peak-provisioned at %s%s" %
            (s["avg_units"], pct(s["saving_vs_payg"]),
             "holds" if s["holds_vs_payg"] else "does not hold", pct(s["saving_vs_peak"]),
             "holds" if s["holds_vs_peak"] else "does not hold",
             span(s["sizes_over_40_vs_payg"]), span(s["sizes_over_40_vs_peak"]), price))


def shown_rows(p, most=24):
    """The table's rows: at most about `most` evenly spaced sizes, plus 0, the average's, the
    recommended and the peak's (--json has them all)."""
    rows = p["rows"]
    step = max(1, -(-len(rows) // most))
    keep = {0, p["avg_units"], p["peak_units"]}
    if p["recommended"]:
        keep.add(p["recommended"]["units"])
    return [r for i, r in enumerate(rows) if i % step == 0 or r["units"] in keep]


def table(out):
    lines = ["source: %s" % out["source"]] + ["  " + n for n in out["notes"]]
    for r in out["routes"]:
        p, cfg, u = r["plan"], r["cfg"], r["cfg"]["unit"]
        cur = cfg["currency"]
        lines += ["", "route %s: unit [capacity %s] %s tpm%s, %s %s/hour%s; PAYG prices: %s" %
                  (r["route"], u.name, "{:,}".format(u.tpm),
                   ", %d streams" % u.streams if u.streams else "", money(u.hourly), cur,
                   " (%s)" % cfg["region"] if cfg["region"] else "", cfg["price_source"]),
                  "observed %s s scaled to 30 days (x %.2f): %s tokens; peak %d units, "
                  "average %d; PAYG adds %.0f ms" %
                  ("{:,}".format(p["observed_s"]), float(p["scale"]),
                   "{:,}".format(p["tokens"]), p["peak_units"], p["avg_units"],
                   float(cfg["payg_latency_ms"])),
                  "  %6s %12s %8s %16s %9s %9s %9s %9s" %
                  ("units", "tpm", "streams", "monthly " + cur, "vs PAYG", "vs peak",
                   "overflow", "added ms")]
        rec = p["recommended"]
        for row in shown_rows(p):
            mark = "*" if rec is not None and row["units"] == rec["units"] else " "
            lines.append("%s %6d %12s %8s %16s %9s %9s %9s %9.1f" % (
                mark, row["units"], "{:,}".format(row["tpm"]),
                row["streams"] if row["streams"] is not None else "-", money(row["cost"]),
                pct(M.saving(row["cost"], p["payg_cost"])),
                pct(M.saving(row["cost"], p["peak_cost"])), pct(row["overflow_share"]),
                float(row["added_latency_ms"])))
        lines += ["  all pay-as-you-go: %s %s a month; provisioned for the peak (%d units): %s %s"
                  % (money(p["payg_cost"]), cur, p["peak_units"], money(p["peak_cost"]), cur),
                  "recommendation: " + why(r), seed_text(r)]
    for s in out["skipped"]:
        lines.append("route %s: no [capacity] section and no --unit-tpm: not planned" % s)
    return "\n".join(lines) + "\n"


def num(x, places=6):
    return None if x is None else round(float(x), places)


def as_json(out):
    routes = []
    for r in out["routes"]:
        p, cfg, u = r["plan"], r["cfg"], r["cfg"]["unit"]
        rows = [{"units": x["units"], "tpm": x["tpm"], "streams": x["streams"],
                 "monthly_cost": num(x["cost"], 4), "fixed": num(x["fixed"], 4),
                 "variable": num(x["variable"], 4), "overflow_share": num(x["overflow_share"]),
                 "added_latency_ms": num(x["added_latency_ms"], 3),
                 "saving_vs_payg": num(M.saving(x["cost"], p["payg_cost"])),
                 "saving_vs_peak": num(M.saving(x["cost"], p["peak_cost"]))} for x in p["rows"]]
        seed = {k: (num(v) if isinstance(v, Fraction) else v) for k, v in r["seed"].items()}
        routes.append({
            "route": r["route"], "currency": cfg["currency"],
            "unit": {"name": u.name, "tpm": u.tpm, "streams": u.streams,
                     "hourly_price": num(u.hourly), "region": cfg["region"]},
            "payg_latency_ms": num(cfg["payg_latency_ms"], 3),
            "price_source": cfg["price_source"],
            "window_s": p["window_s"], "observed_s": p["observed_s"],
            "month_scale": num(p["scale"]), "tokens": p["tokens"],
            "peak_units": p["peak_units"], "avg_units": p["avg_units"],
            "payg_monthly": num(p["payg_cost"], 4), "peak_monthly": num(p["peak_cost"], 4),
            "sizes": rows,
            "recommended_units": p["recommended"]["units"] if p["recommended"] else None,
            "why": why(r), "seed_claim": seed, "seed_text": seed_text(r)})
    return {"tool": "trilemma-plan", "source": out["source"], "notes": out["notes"],
            "month_days": 30, "routes": routes, "skipped": out["skipped"]}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = run(args)
    except M.PlanError as e:
        die(str(e))
    j = as_json(out)
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(plan_html.render(j))
        except OSError as e:
            die("cannot write %s: %s" % (args.html, e.strerror or e))
    if args.json:
        json.dump(j, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
