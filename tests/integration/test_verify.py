"""test_verify.py - a route's verified answer end to end (docs/routing.md, "The verified answer"):
a real trilemmad with an agents file whose routes say `verify = yes`, trilemma-sim as the models
and the commerce API, a WebSocket client. The cheap model is told by directive to make a mistake
(a misstated price, a product the results do not have, a comparison in prose, a refusal); what
the client saw, the turn's flags and the provider's request log (which model answered, what it
was told) say whether the answer was held, checked and escalated before anything was shown.

The simulator, the servers and the agents files come from test_orchestrator.py (the same world);
nothing depends on the catalog's data or the simulator's wording, and no test asserts a time.
"""

import os
import re
import subprocess

from harness import TIMEOUT, Args, Suite, http_request
from test_orchestrator import (  # the orchestrator tests' simulator, servers and agents files
    QUERY_TYPES, SIMS, agent_requests, messages_of, open_session, orch_server, section,
    shipped_agents, sim, turn, write_agents)

suite = Suite("verify")


@suite.on_teardown
def stop_sims():
    for s in SIMS.values():
        s.stop()


@suite.test
async def test_verified_answer_escalates_before_anything_is_shown():
    """verify = yes: the cheap model's whole answer is held and checked; a misstated price, a
    product the results do not have, or a comparison without the table its route wants escalates
    to the next model, and the client sees only that model's answer."""
    s = sim()
    secs = shipped_agents()
    for qt in ("product_search", "product_fact", "comparison"):
        section(secs, "route " + qt)["verify"] = "yes"
    section(secs, "route comparison")["format"] = "table"
    with orch_server(s, agents=write_agents(secs)) as srv:
        for mistake, reason in (("wrong_number", "ungrounded"), ("wrong_product", "ungrounded")):
            ws = await open_session(srv)
            rseq = s.requests_seq()
            t = await turn(ws, "best phone under 20000 with a big battery "
                               "[[sim:mistake=%s]]" % mistake, "m1")
            t.check_stop()
            assert "escalated:" + reason in t.flags, (mistake, t.flags)
            # what was shown is the frontier's answer alone, and it is grounded
            assert "ungrounded_number" not in t.flags, (mistake, t.text)
            models = [m for _, m, _ in agent_requests(s.requests(rseq))]
            assert models[-1] == "sim-frontier" and "sim-cheap" in models, models
            assert t.text.count("My pick") <= 1, t.text
            await ws.close()
        ws = await open_session(srv)
        t = await turn(ws, "phones under 20000", "m1")
        t.check_stop()
        rseq = s.requests_seq()
        t = await turn(ws, "compare the two cheapest [[sim:mistake=no_table]]", "m2")
        t.check_stop()
        assert "escalated:format" in t.flags, (t.flags, t.text)
        assert "|---" in t.text, t.text
        # a correct cheap answer is shown as it is: no escalation, no frontier call
        rseq = s.requests_seq()
        t = await turn(ws, "compare the two cheapest", "m3")
        t.check_stop()
        assert not [f for f in t.flags if f.startswith("escalated:")], t.flags
        assert "|---" in t.text, t.text
        assert "sim-frontier" not in [m for _, m, _ in agent_requests(s.requests(rseq))]
        await ws.close()


@suite.test
async def test_verified_answer_retried_with_the_reason():
    """A cascade may name the cheap model twice: the second try is told why the first answer was
    withdrawn (the misstated price, in a system message after the tool results), and so is every
    model after it."""
    s = sim()
    secs = shipped_agents()
    section(secs, "agent search")["cascade"] = "openai/sim-cheap, openai/sim-cheap, " \
                                               "openai/sim-frontier"
    section(secs, "route product_search")["verify"] = "yes"
    with orch_server(s, agents=write_agents(secs)) as srv:
        ws = await open_session(srv)
        rseq = s.requests_seq()
        # the directive makes every cheap answer err: both cheap tries fail, the frontier answers
        t = await turn(ws, "best phone under 20000 with a big battery "
                           "[[sim:mistake=wrong_number]]", "m1")
        t.check_stop()
        assert "escalated:ungrounded" in t.flags and "ungrounded_number" not in t.flags, t.flags
        reqs = agent_requests(s.requests(rseq))
        models = [m for _, m, _ in reqs]
        assert models[-3:] == ["sim-cheap", "sim-cheap", "sim-frontier"], models
        notes = [[c for r, c in messages_of(b) if r == "system" and "withdrawn" in c]
                 for _, _, b in reqs[-3:]]
        assert notes[0] == [], notes
        assert len(notes[1]) == 1 and "₹" in notes[1][0], notes
        assert len(notes[2]) == 2, notes  # the frontier is told both
        # the note follows the tool results it is about
        roles = [r for r, _ in messages_of(reqs[-2][2])]
        assert roles[-1] == "system" and "tool" in roles, roles
        await ws.close()


@suite.test
async def test_verified_answer_escalates_a_refusal():
    """verify = yes holds the whole answer: a refusal by a model with a next one in the cascade
    escalates (as hold_opening's held opening does), with hold_opening or without it."""
    s = sim()
    for hold in ("yes", "no"):
        secs = [["classifier", {"model": ""}], ["turn", {"hold_opening": hold}],
                ["agent general", {"prompt": os.path.join(Args.source, "config", "prompts",
                                                          "general.md"),
                                   "cascade": "openai/sim-cheap, openai/sim-frontier",
                                   "context": "query", "max_steps": "1"}]]
        for qt in QUERY_TYPES:
            secs.append(["route " + qt, {"agent": "general", "max_tokens": "80", "verify": "yes"}])
        with orch_server(s, agents=write_agents(secs)) as srv:
            ws = await open_session(srv)
            rseq = s.requests_seq()
            t = await turn(ws, "[[sim:echo]]I cannot help with that. Sorry about it.", "m1")
            t.check_stop()
            assert "escalated:refusal" in t.flags, (hold, t.end)
            assert [m for _, m, _ in s.requests(rseq)] == ["sim-cheap", "sim-frontier"], hold
            assert t.text == "I cannot help with that. Sorry about it.", (hold, t.text)
            rseq = s.requests_seq()
            t = await turn(ws, "[[sim:echo]]Happy to help with that. Ask away.", "m2")
            t.check_stop()
            assert not [f for f in t.flags if f.startswith("escalated:")], (hold, t.end)
            assert [m for _, m, _ in s.requests(rseq)] == ["sim-cheap"], hold
            await ws.close()


@suite.test
async def test_verify_lines_shows_checked_lines_and_leaves_out_a_later_mistake():
    """verify = lines: each line is shown once it passes. A mistake after something was shown is
    left out (flag verify_dropped, no escalation, no frontier call); a mistake in the first line
    still escalates before anything is shown; a comparison's lines wait for its table, so prose
    where a table was wanted still escalates."""
    s = sim()
    secs = shipped_agents()
    for qt in ("product_search", "product_fact", "comparison"):
        section(secs, "route " + qt)["verify"] = "lines"
    section(secs, "route comparison")["format"] = "table"
    with orch_server(s, agents=write_agents(secs)) as srv:
        ws = await open_session(srv)
        t = await turn(ws, "best phone under 20000 with a big battery", "m0")
        t.check_stop()
        good = t.text  # the same question answered without a mistake
        assert "verify_dropped" not in t.flags and "My pick" in good, (t.flags, good)
        ws2 = await open_session(srv)
        rseq = s.requests_seq()
        t = await turn(ws2, "best phone under 20000 with a big battery "
                            "[[sim:mistake=wrong_product]]", "m1")
        t.check_stop()
        assert "verify_dropped" in t.flags, (t.flags, t.text)
        assert not [f for f in t.flags if f.startswith("escalated:")], t.flags
        assert "ungrounded_number" not in t.flags, t.text
        assert "sim-frontier" not in [m for _, m, _ in agent_requests(s.requests(rseq))]
        # the list was shown as it is; the pick naming a product the results lack was left out
        shown = [ln for ln in t.text.splitlines() if ln.strip()]
        assert shown and all(ln in good.splitlines() for ln in shown), (t.text, good)
        assert "My pick" not in t.text, t.text
        m = http_request(srv.port, "GET", "/metrics").body.decode()
        assert re.search(r'trilemma_turn_flags_total\{kind="verify_dropped"\} [1-9]', m), m
        # a fact whose first line is wrong: nothing was shown yet, so it escalates
        t = await turn(ws2, "how much is the first one [[sim:mistake=wrong_number]]", "m2")
        t.check_stop()
        assert "escalated:ungrounded" in t.flags, (t.flags, t.text)
        assert "ungrounded_number" not in t.flags, t.text
        # prose where the route wants a table: held (no table began), then escalated
        t = await turn(ws, "compare the two cheapest [[sim:mistake=no_table]]", "m3")
        t.check_stop()
        assert "escalated:format" in t.flags and "|---" in t.text, (t.flags, t.text)
        await ws.close()
        await ws2.close()


@suite.test
async def test_verify_and_format_keys_checked():
    """Bad values of the route's verify / format keys stop the start with a message naming them."""
    for key, val in (("verify", "maybe"), ("format", "json")):
        secs = shipped_agents()
        section(secs, "route comparison")[key] = val
        path = write_agents(secs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRILEMMA_")}
        env.update(TRILEMMA_AGENTS_FILE=path, TRILEMMA_LISTEN="127.0.0.1:0",
                   TRILEMMA_ADMIN_LISTEN="127.0.0.1:0", TRILEMMA_MODEL="openai/sim-frontier",
                   OPENAI_BASE_URL="http://127.0.0.1:9/v1",
                   TRILEMMA_TOOLS_FILE=os.path.join(Args.source, "config", "tools.json"))
        # from the source folder: the default price file (config/prices.csv) is relative
        p = subprocess.Popen([Args.server], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=Args.source)
        try:
            _, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError("trilemmad started with [route comparison] %s = %s" % (key, val))
        assert p.returncode != 0, (key, err)
        assert "[route comparison] %s = '%s'" % (key, val) in err, err


if __name__ == "__main__":
    suite.main()
