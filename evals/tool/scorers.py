"""scorers.py - the pure scoring functions of trilemma-eval (no I/O, no clock, no global state).

Every function takes plain values (strings, lists, dicts) and returns plain values, so the unit
tests (tests/evals/test_scorers.py) check them against values computed by hand. Randomness
(bootstrap) takes its own random.Random, seeded by the caller.
"""

import math
import random
import re

# ---------------------------------------------------------------------------------------------
# retrieval


def precision_at_k(shown, grades, k):
    """Share of the first k products shown that are relevant (grade > 0). shown: product ids in
    the order shown; grades: {id: grade}. None when nothing was shown (no slate to judge)."""
    top = list(shown)[:k]
    if not top:
        return None
    return sum(1 for p in top if grades.get(p, 0) > 0) / len(top)


def dcg(gains):
    """Discounted cumulative gain with exponential gain: sum (2^g - 1) / log2(i + 2)."""
    return sum((2.0 ** g - 1.0) / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(shown, grades, k):
    """NDCG@k of the slate with graded relevance: DCG of the shown order over DCG of the ideal
    order of all graded products (both cut at k). None when there is nothing relevant to find or
    nothing was shown; a slate of only irrelevant products is 0."""
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    top = list(shown)[:k]
    if not ideal or not top:
        return None
    return dcg([grades.get(p, 0) for p in top]) / dcg(ideal)


def tool_precision_recall(called, expected):
    """Precision and recall of the set of tool names called against the expected set. Nothing
    expected and nothing called: (1, 1), the right choice. Nothing called when tools were
    expected: precision 1 (no wrong call), recall 0. Tools called when none were expected:
    precision 0, recall 1."""
    c, e = set(called), set(expected)
    if not c and not e:
        return 1.0, 1.0
    p = len(c & e) / len(c) if c else 1.0
    r = len(c & e) / len(e) if e else 1.0
    return p, r


# ---------------------------------------------------------------------------------------------
# claims in an answer and their grounding

_NUM = r"\d[\d,]*(?:\.\d+)?"
PRICE_RE = re.compile(
    r"(?:₹|\bRs\.?\s?|\bINR\s?)\s*(" + _NUM + r")|(" + _NUM + r")\s*(?:rupees\b|/-)", re.I)
UNITS = ("mAh|GB|TB|MP|Hz|W|inch(?:es)?|mm|hours?|hrs?|kg|g|days?|months?")
UNIT_RE = re.compile(r"(?<![\w.])(" + _NUM + r")\s?(?:-|\s)?(" + UNITS + r")\b", re.I)
BOLD_RE = re.compile(r"\*\*(.+?)\*\*")
NUMBER_IN_TEXT_RE = re.compile(_NUM)


def parse_number(s):
    """'1,04,990' -> 104990.0; '6.5' -> 6.5 (commas are grouping, Indian or Western)."""
    return float(s.replace(",", ""))


def extract_claims(text):
    """The checkable statements of an answer: [{"kind": "price"|"spec"|"title", "text", "value"}].
    Prices: ₹/Rs/INR amounts and "N rupees" / "N/-"; specs: numbers with a unit (mAh, GB, Hz,
    MP, W, inch, mm, hours, g, kg, days, months); titles: **bold** names."""
    claims, spans = [], []
    for m in PRICE_RE.finditer(text):
        num = m.group(1) or m.group(2)
        claims.append({"kind": "price", "text": m.group(0).strip(), "value": parse_number(num)})
        spans.append(m.span())
    for m in UNIT_RE.finditer(text):
        if any(a <= m.start() < b for a, b in spans):
            continue
        claims.append({"kind": "spec", "text": m.group(0).strip(),
                       "value": parse_number(m.group(1))})
    for m in BOLD_RE.finditer(text):
        name = m.group(1).strip()
        if not re.search(r"\d", name) and len(name.split()) < 3:
            continue  # "**Policy**", "**shipped**": emphasis, not a product's name
        claims.append({"kind": "title", "text": m.group(1).strip(), "value": m.group(1).strip()})
    return claims


def evidence_from(objs):
    """The numbers and strings of tool data (any JSON values): every number value, every number
    written inside a string ("7000 mAh", "7 to 30 days"), and every string (titles, names)."""
    nums, strings = set(), set()

    def walk(v):
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, (int, float)):
            nums.add(float(v))
        elif isinstance(v, str):
            strings.add(v.strip().lower())
            for m in NUMBER_IN_TEXT_RE.finditer(v):
                try:
                    nums.add(parse_number(m.group(0)))
                except ValueError:
                    pass
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    for o in objs:
        walk(o)
    return {"numbers": nums, "strings": strings}


USER_AMOUNT_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(k|lakhs?|lacs?)?\b", re.I)


def user_numbers(text):
    """Numbers in the user's words, with the shorthands of Indian shoppers: 20k = 20000,
    1.5 lakh = 150000."""
    out = set()
    for m in USER_AMOUNT_RE.finditer(text):
        v = parse_number(m.group(1))
        mult = {"k": 1e3}.get((m.group(2) or "").lower(), 1e5 if m.group(2) else 1)
        out.add(v * mult)
        out.add(v)
    return out


def claim_grounded(claim, evidence, user_text=""):
    """Whether one claim is supported by the evidence (or the user's own words: a budget the
    user gave may be repeated). Titles must be a string of the evidence exactly (case aside)."""
    if claim["kind"] == "title":
        t = claim["value"].lower().rstrip(":")
        return t in evidence["strings"] or t in user_text.lower()
    v = claim["value"]
    if any(abs(v - n) < 1e-6 for n in evidence["numbers"]):
        return True
    return any(abs(v - n) < 1e-6 for n in user_numbers(user_text))


def factual_score(text, evidence, user_text=""):
    """Factual accuracy of an answer against its tool data: the share of its claims that are
    grounded (1.0 with no claims), whether any claim is a hallucination, and the bad claims."""
    claims = extract_claims(text)
    bad = [c for c in claims if not claim_grounded(c, evidence, user_text)]
    acc = 1.0 if not claims else (len(claims) - len(bad)) / len(claims)
    return {"accuracy": acc, "hallucination": bool(bad), "claims": len(claims),
            "ungrounded": [c["text"] for c in bad]}


def normalize_fact(s):
    """Facts compare as lower-case text without grouping commas and extra spaces."""
    return re.sub(r"\s+", " ", s.replace(",", "")).strip().lower()


def fact_recall(text, facts):
    """Share of the facts the answer must state that it states (each fact's value appears in the
    answer, grouping commas and case aside). None when the case has no facts."""
    if not facts:
        return None
    t = normalize_fact(text)
    return sum(1 for f in facts if normalize_fact(str(f["value"])) in t) / len(facts)


def has_table(text):
    """A Markdown table: a header row and a |---| separator row."""
    return bool(re.search(r"^\s*\|.*\|\s*$\n^\s*\|?\s*:?-{3,}", text, re.M))


# ---------------------------------------------------------------------------------------------
# verbosity

# words allowed per verbosity class (the classes of the golden set: see evals/README.md)
VERBOSITY_WORDS = {"short": 60, "medium": 150, "long": 300}


def word_count(text):
    return len(text.split())


def verbosity_score(text, klass, finish_reason="stop"):
    """1.0 within the class's word budget, budget/words above it (a 2x long answer scores 0.5);
    0 for an answer cut by the token budget (finish_reason length) or an empty one."""
    n = word_count(text)
    if n == 0 or finish_reason == "length":
        return 0.0
    budget = VERBOSITY_WORDS[klass]
    return 1.0 if n <= budget else budget / n


# ---------------------------------------------------------------------------------------------
# statistics


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def percentile(xs, q):
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def bootstrap_mean_ci(xs, rng, n=1000, level=0.95):
    """Percentile bootstrap CI of the mean of xs (None values dropped): n resamples with
    replacement drawn from rng. Returns (mean, lo, hi), or (None, None, None) when empty."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, None
    means = []
    for _ in range(n):
        means.append(sum(xs[rng.randrange(len(xs))] for _ in xs) / len(xs))
    a = (1 - level) / 2 * 100
    return sum(xs) / len(xs), percentile(means, a), percentile(means, 100 - a)


def bootstrap_diff_ci(pairs, rng, n=1000, level=0.95):
    """Paired bootstrap of mean(b - a) over cases scored in both runs: pairs = [(a, b)] (pairs
    with a None dropped). Returns (diff, lo, hi)."""
    return bootstrap_mean_ci([b - a for a, b in pairs if a is not None and b is not None],
                             rng, n, level)


# ---------------------------------------------------------------------------------------------
# pairwise preferences (the vibe-check)


def bradley_terry(games, iters=1000, tol=1e-10):
    """Bradley-Terry strengths from pairwise games [(winner, loser, weight)] (a tie is two games
    of weight 0.5, one each way), by the minorization-maximization iteration of Hunter (2004):
    p_i = W_i / sum_j n_ij / (p_i + p_j), normalized to a geometric mean of 1. Returns
    {player: strength}; P(i beats j) = p_i / (p_i + p_j)."""
    players = sorted({g[0] for g in games} | {g[1] for g in games})
    wins = {p: 0.0 for p in players}
    n = {}
    for w, l, wt in games:
        wins[w] += wt
        key = tuple(sorted((w, l)))
        n[key] = n.get(key, 0.0) + wt
    p = {x: 1.0 for x in players}
    for _ in range(iters):
        new = {}
        for i in players:
            denom = 0.0
            for (a, b), nij in n.items():
                if i in (a, b):
                    j = b if i == a else a
                    denom += nij / (p[i] + p[j])
            new[i] = wins[i] / denom if denom > 0 else p[i]
        g = math.exp(sum(math.log(max(v, 1e-300)) for v in new.values()) / len(new))
        new = {k: v / g for k, v in new.items()}
        done = max(abs(new[k] - p[k]) for k in players) < tol
        p = new
        if done:
            break
    return p


def votes_to_games(votes):
    """Votes [{"a", "b", "choice": "a"|"b"|"tie"|"both_bad"}] (a, b: the two versions) to
    Bradley-Terry games: a win is (winner, loser, 1); a tie (and both bad: neither is preferred)
    is half a win each way."""
    games = []
    for v in votes:
        a, b, c = v["a"], v["b"], v["choice"]
        if c == "a":
            games.append((a, b, 1.0))
        elif c == "b":
            games.append((b, a, 1.0))
        else:
            games.append((a, b, 0.5))
            games.append((b, a, 0.5))
    return games


def bt_bootstrap(votes, rng, n=200, level=0.95):
    """Bradley-Terry strengths (log scale: log p, geometric mean 0) with bootstrap CIs over
    votes resampled with replacement. Returns {player: (log_p, lo, hi)}."""
    base = bradley_terry(votes_to_games(votes))
    samples = {k: [] for k in base}
    for _ in range(n):
        res = [votes[rng.randrange(len(votes))] for _ in votes]
        p = bradley_terry(votes_to_games(res), iters=300, tol=1e-8)
        for k in base:
            samples[k].append(math.log(p[k]) if k in p and p[k] > 0 else float("-inf"))
    a = (1 - level) / 2 * 100
    out = {}
    for k, v in base.items():
        finite = [x for x in samples[k] if x != float("-inf")] or [float("-inf")]
        out[k] = (math.log(v), percentile(finite, a), percentile(finite, 100 - a))
    return out


def voter_agreement(votes):
    """Agreement between voters on the items two or more of them judged: the share of pairs of
    votes on the same item that agree (observed), and Fleiss' kappa over those items (chance
    agreement from the overall share of each choice). votes: [{"item", "voter", "choice"}] with
    choice in a, b, tie, both_bad. Returns {"items", "pairwise", "kappa"}."""
    by_item = {}
    for v in votes:
        by_item.setdefault(v["item"], {})[v["voter"]] = v["choice"]
    cats = ["a", "b", "tie", "both_bad"]
    items = [list(d.values()) for d in by_item.values() if len(d) >= 2]
    if not items:
        return {"items": 0, "pairwise": None, "kappa": None}
    agree = pairs = 0
    pi_sum, totals, total_n = 0.0, {c: 0 for c in cats}, 0
    for ch in items:
        m = len(ch)
        counts = {c: ch.count(c) for c in cats}
        for c in cats:
            totals[c] += counts[c]
        total_n += m
        agree += sum(k * (k - 1) / 2 for k in counts.values())
        pairs += m * (m - 1) / 2
        pi_sum += sum(k * (k - 1) for k in counts.values()) / (m * (m - 1))
    p_bar = pi_sum / len(items)
    p_e = sum((totals[c] / total_n) ** 2 for c in cats)
    kappa = None if p_e >= 1 else (p_bar - p_e) / (1 - p_e)
    return {"items": len(items), "pairwise": agree / pairs, "kappa": kappa}


def new_rng(seed):
    """The one way to get randomness here: a seeded generator (the same seed, the same CIs)."""
    return random.Random(seed)
