/* test_agents.c - the orchestrator's file (each bad input and its message), handoffs, context
 * policies and product references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/agents.h"
#include "orchestrator/context.h"
#include "tests/tap.h"

static char dir[64];

static void put(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static const char *good =
    "[classifier]\nmodel = openai/sim-classifier\ndeadline_ms = 250\nmin_confidence = 0.6\n"
    "[turn]\nmax_handoffs = 2\n"
    "[agent search]\nprompt = search.md\ntools = search_products, get_product\n"
    "cascade = openai/sim-cheap, openai/sim-frontier\ncontext = clarification\n"
    "handoffs = specialist\n"
    "[agent specialist]\nprompt = spec.md\ntools = get_product,get_offers,get_policy\n"
    "cascade = anthropic/sim-frontier\ncontext = chosen_product\nhandoffs = search\n"
    "[agent general]\nprompt = spec.md\ncascade = gemini/sim-cheap\n"
    "[route product_search]\nagent = search\nmax_tokens = 300\n"
    "[route product_fact]\nagent = specialist\nmax_tokens = 150\n"
    "[route comparison]\nagent = search\nmax_tokens = 400\n"
    "[route policy]\nagent = specialist\nmax_tokens = 200\ncacheable = yes\ncache_ttl_s = 3600\n"
    "max_cost_micros = 5000000000\n"
    "semantic_threshold = 0.9\n"
    "[route order_status]\nagent = specialist\n"
    "[route chitchat]\nagent = general\nmax_tokens = 80\n"
    "[route other]\nagent = general\n"
    "[capacity frontier-ptu]\nmodel = openai/sim-frontier\ndeployment_model = sim-frontier-ptu\n"
    "base_url = /ptu/frontier-ptu/v1\ntpm = 400000\nstreams = 64\nhourly_price = 4.00\n"
    "currency = INR\nregion = ap-south-1\n"
    "[capacity cheap-ptu]\nmodel = openai/sim-cheap\nbase_url = http://127.0.0.1:9/ptu/c/v1\n"
    "tpm = 1000\nstreams = 2\n";

static void test_good(void)
{
    struct orch_conf c;
    char err[512], path[128];
    snprintf(path, sizeof(path), "%s/agents.ini", dir);
    put("agents.ini", good);
    int rc = orch_conf_load(&c, path, err, sizeof(err));
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK(c.n_agents == 3);
    CHECK(strcmp(c.classifier_model, "openai/sim-classifier") == 0);
    CHECK(c.classifier_deadline_ms == 250 && c.min_confidence > 0.59f);
    const struct agent *s = &c.agents[orch_agent_find(&c, "search")];
    CHECK(s->n_tools == 2 && strcmp(s->tools[1], "get_product") == 0);
    CHECK(s->n_cascade == 2 && strcmp(s->cascade[1], "openai/sim-frontier") == 0);
    CHECK(s->context == CTX_CLARIFICATION && s->max_steps == 4);
    CHECK(strcmp(s->prompt, "You find products.\n") == 0);
    CHECK(strlen(s->prompt_version) == 12);
    CHECK(orch_agent_has_tool(s, "search_products") && !orch_agent_has_tool(s, "get_order"));
    const struct agent *sp = &c.agents[orch_agent_find(&c, "specialist")];
    CHECK(strcmp(sp->prompt_version, s->prompt_version) != 0); /* versions follow the text */
    CHECK(c.routes[QT_POLICY].cacheable && c.routes[QT_POLICY].cache_ttl_s == 3600);
    CHECK(c.routes[QT_POLICY].semantic_threshold > 0.899f &&
          c.routes[QT_POLICY].semantic_threshold < 0.901f);
    CHECK(c.routes[QT_CHITCHAT].semantic_threshold == 0); /* opt-in per type */
    CHECK(c.routes[QT_CHITCHAT].max_tokens == 80);
    CHECK(c.routes[QT_POLICY].max_cost_micros == 5000000000LL);
    CHECK(c.routes[QT_CHITCHAT].max_cost_micros == 0); /* unset: [budget] turn_max_micros */
    CHECK(c.routes[QT_COMPARISON].agent == orch_agent_find(&c, "search"));
    CHECK(c.routes[QT_ORDER_STATUS].max_tokens == 0); /* unset: the provider's default */

    int search = orch_agent_find(&c, "search"), spec = orch_agent_find(&c, "specialist"),
        gen = orch_agent_find(&c, "general");
    int chain[3] = {search};
    CHECK(orch_handoff_check(&c, chain, 1, spec) == HANDOFF_OK);
    CHECK(orch_handoff_check(&c, chain, 1, gen) == HANDOFF_NOT_ALLOWED);
    chain[1] = spec;
    CHECK(orch_handoff_check(&c, chain, 2, search) == HANDOFF_LOOP); /* A -> B -> A */
    c.max_handoffs = 0;
    CHECK(orch_handoff_check(&c, chain, 1, spec) == HANDOFF_LIMIT);

    CHECK(c.n_capacity == 2);
    const struct capacity_section *f = &c.capacity[0], *ch = &c.capacity[1];
    CHECK(!strcmp(f->name, "frontier-ptu") && !strcmp(f->model, "openai/sim-frontier"));
    CHECK(!strcmp(f->deployment_model, "sim-frontier-ptu"));
    CHECK(!strcmp(f->base_url, "/ptu/frontier-ptu/v1") && f->tpm == 400000 && f->streams == 64);
    CHECK(f->hourly_micros == 4000000 && !strcmp(f->currency, "INR"));
    CHECK(!strcmp(f->region, "ap-south-1"));
    /* defaults: the model's id, USD, no price, no region */
    CHECK(!strcmp(ch->deployment_model, "sim-cheap") && !strcmp(ch->currency, "USD"));
    CHECK(ch->hourly_micros == 0 && ch->region[0] == '\0');
    CHECK(orch_capacity_for_model(&c, "openai/sim-cheap") == 1);
    CHECK(orch_capacity_for_model(&c, "anthropic/sim-frontier") == -1);
    orch_conf_free(&c);
}

/* The line of the first occurrence of s in the fixture (1-based). */
static int line_of(const char *s)
{
    const char *at = strstr(good, s);
    int line = 1;
    for (const char *p = good; at && p < at; p++)
        line += *p == '\n';
    return line;
}

/* A capacity section whose model no cascade names loads (it takes no call). */
static void test_capacity_unused_model(void)
{
    char text[4096], path[128], err[512] = "";
    const char *m = "model = openai/sim-cheap\nbase_url";
    const char *at = strstr(good, m);
    snprintf(text, sizeof(text), "%.*smodel = gemini/unused\nbase_url%s", (int)(at - good), good,
             at + strlen(m));
    put("unused.ini", text);
    snprintf(path, sizeof(path), "%s/unused.ini", dir);
    struct orch_conf c;
    int rc = orch_conf_load(&c, path, err, sizeof(err));
    CHECKF(rc == 0 && c.n_capacity == 2, "%s", err);
    if (!rc)
        orch_conf_free(&c);
}

static void bad(const char *replace, const char *with, const char *want)
{
    char text[4096], path[128], err[512] = "";
    const char *at = strstr(good, replace);
    if (!at) {
        CHECKF(0, "fixture has no '%s'", replace);
        return;
    }
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - good), good, with, at + strlen(replace));
    put("bad.ini", text);
    snprintf(path, sizeof(path), "%s/bad.ini", dir);
    struct orch_conf c;
    int rc = orch_conf_load(&c, path, err, sizeof(err));
    CHECKF(rc == -1 && strstr(err, want), "'%s' -> %d '%s' (want '%s')", with, rc, err, want);
    CHECK(c.n_agents == 0); /* nothing half-loaded */
}

static void test_bad(void)
{
    bad("[turn]", "[turns]", "unknown section [turns]");
    bad("max_handoffs = 2", "max_handoffs = 20", "expected an integer in range");
    bad("max_handoffs = 2", "max_hops = 2", "unknown key 'max_hops' in [turn]");
    bad("deadline_ms = 250", "deadline_ms = 250\ndeadline_ms = 9", "duplicate key 'deadline_ms'");
    bad("min_confidence = 0.6", "min_confidence = 1.5", "a number from 0 to 1");
    bad("model = openai/sim-classifier", "model = sim-classifier", "provider/model");
    bad("cascade = openai/sim-cheap, openai/sim-frontier", "cascade = openai/a, mistral/b",
        "1-4 comma-separated provider/model");
    bad("cascade = gemini/sim-cheap\n", "", "[agent general] has no cascade");
    bad("prompt = search.md", "prompt = missing.md", "cannot read prompt");
    bad("prompt = search.md", "prompt = empty.md", "is empty");
    bad("context = clarification", "context = everything", "query, clarification");
    bad("handoffs = specialist", "handoffs = nobody", "hands off to unknown agent 'nobody'");
    bad("tools = search_products, get_product", "tools = search_products,", "comma-separated");
    bad("[agent general]", "[agent General]", "an agent name is");
    bad("[route other]\nagent = general\n", "", "no [route other]");
    bad("[route other]", "[route misc]", "unknown query type");
    bad("[route chitchat]\nagent = general", "[route chitchat]\nagent = nobody",
        "agent 'nobody' is not an [agent NAME] section");
    bad("cacheable = yes", "cacheable = maybe", "yes or no");
    bad("max_cost_micros = 5000000000", "max_cost_micros = -5", "an integer in range");
    bad("max_cost_micros = 5000000000", "max_cost_micros = 5e9", "an integer in range");
    bad("semantic_threshold = 0.9", "semantic_threshold = 1.2", "a similarity above 0");
    bad("semantic_threshold = 0.9", "semantic_threshold = 0", "a similarity above 0");
    bad("semantic_threshold = 0.9", "semantic_threshold = high", "a similarity above 0");
    bad("cache_ttl_s = 3600\n", "", "semantic_threshold needs cache_ttl_s");
}

static void test_bad_capacity(void)
{
    bad("[capacity cheap-ptu]", "[capacity Cheap]", "a capacity name is 1-31 of a-z 0-9 _ -");
    bad("[capacity cheap-ptu]", "[capacity frontier-ptu]", "[capacity frontier-ptu] appears twice");
    bad("streams = 64", "streams = 64\nburst = 5",
        "unknown key 'burst' in [capacity frontier-ptu]");
    bad("streams = 64", "streams = 64\nstreams = 8", "duplicate key 'streams'");
    bad("tpm = 1000", "tpm = 0", "tokens per minute, an integer from 1");
    bad("tpm = 1000", "tpm = 1k", "tokens per minute, an integer from 1");
    bad("tpm = 1000", "tpm = -1", "tokens per minute, an integer from 1");
    bad("streams = 2", "streams = 0", "concurrent streams, an integer");
    bad("hourly_price = 4.00", "hourly_price = -4", "a non-negative decimal");
    bad("hourly_price = 4.00", "hourly_price = 4.0000001", "a non-negative decimal");
    bad("currency = INR", "currency = EUR", "USD or INR");
    bad("region = ap-south-1", "region = ap south", "a label of at most 31");
    bad("model = openai/sim-cheap\nbase_url", "model = mistral/sim-cheap\nbase_url",
        "[capacity cheap-ptu] model = 'mistral/sim-cheap': expected provider/model");
    bad("base_url = /ptu/frontier-ptu/v1", "base_url = ftp://h/v1", "an http(s):// URL");
    bad("base_url = /ptu/frontier-ptu/v1", "base_url = //h/v1", "an http(s):// URL");
    bad("base_url = /ptu/frontier-ptu/v1", "base_url = http://", "an http(s):// URL");
    bad("deployment_model = sim-frontier-ptu", "deployment_model = a b", "a model id");
    bad("tpm = 1000\nstreams = 2\n", "tpm = 1000\n", "[capacity cheap-ptu] has no streams");
    bad("base_url = http://127.0.0.1:9/ptu/c/v1\n", "", "[capacity cheap-ptu] has no base_url");
    /* errors name the file and the line: a key's line, a section's line for the whole-file checks
     */
    char want[160];
    snprintf(want, sizeof(want), "bad.ini:%d: [capacity frontier-ptu] currency",
             line_of("currency"));
    bad("currency = INR", "currency = EUR", want);
    snprintf(want, sizeof(want),
             "bad.ini:%d: [capacity cheap-ptu] serves openai/sim-frontier, already served by "
             "[capacity frontier-ptu]",
             line_of("[capacity cheap-ptu]"));
    bad("model = openai/sim-cheap\nbase_url", "model = openai/sim-frontier\nbase_url", want);
}

static void test_context(void)
{
    const struct ctx_msg h[] = {
        {"user", "phones under 20000", 18},
        {"assistant", "Here are three phones.", 22},
        {"user", "which has the best camera", 25},
        {"assistant", "Do you prefer Samsung or Xiaomi?", 32},
        {"user", "Samsung", 7},
    };
    size_t idx[8];
    CHECK(context_select(CTX_QUERY, h, 5, idx, 8) == 1 && idx[0] == 4);
    CHECK(context_select(CTX_CHOSEN_PRODUCT, h, 5, idx, 8) == 1 && idx[0] == 4);
    size_t k = context_select(CTX_CLARIFICATION, h, 5, idx, 8);
    CHECK(k == 3 && idx[0] == 2 && idx[1] == 3 && idx[2] == 4);
    k = context_select(CTX_CLARIFICATION, h, 3, idx, 8); /* the last answer was no question */
    CHECK(k == 1 && idx[0] == 2);
    k = context_select(CTX_FULL, h, 5, idx, 8);
    CHECK(k == 5 && idx[0] == 0 && idx[4] == 4);
    k = context_select(CTX_FULL, h, 5, idx, 2);
    CHECK(k == 2 && idx[0] == 3);
    CHECK(context_select(CTX_QUERY, h, 0, idx, 8) == 0);

    const struct slate_ref s[] = {
        {"p1", "Nova X 5G (8GB, 128GB)", 18999},
        {"p2", "Zenphone Lite", 12999},
        {"p3", "Orbit Pro Max", 24999},
    };
#define R(t) context_resolve_product(t, strlen(t), s, 3)
    CHECK(R("tell me more about the second one") == 1);
    CHECK(R("what about #3") == 2);
    CHECK(R("the last one") == 2);
    CHECK(R("is the cheapest one 5G?") == 1);
    CHECK(R("the most expensive") == 2);
    CHECK(R("does the orbit have wireless charging") == 2);
    CHECK(R("battery of nova x?") == 0);
    CHECK(R("anything else?") == -1);
    CHECK(context_resolve_product("first", 5, s, 0) == -1);
#define P(t) context_pick_products(t, strlen(t), s, 3, idx, 8)
    k = P("compare the two cheapest");
    CHECK(k == 2 && idx[0] == 0 && idx[1] == 1);
    k = P("compare the 2 most expensive ones");
    CHECK(k == 2 && idx[0] == 0 && idx[1] == 2);
    k = P("first vs third");
    CHECK(k == 2 && idx[0] == 0 && idx[1] == 2);
    k = P("Orbit Pro Max vs Zenphone Lite");
    CHECKF(k == 2 && idx[0] == 1 && idx[1] == 2, "k %zu", k);
    k = P("compare them");
    CHECK(k == 2 && idx[0] == 0 && idx[1] == 1);
    k = P("compare all three cheapest");
    CHECK(k == 3);
    CHECK(context_pick_products("x", 1, s, 0, idx, 8) == 0);
}

/* The shipped file loads, and every query type routes to an agent with a prompt. */
static void test_shipped(void)
{
    struct orch_conf c;
    char err[512];
    int rc = orch_conf_load(&c, CONFIG_DIR "/agents.ini", err, sizeof(err));
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return;
    for (int t = 0; t < QT__COUNT; t++) {
        const struct agent *a = &c.agents[c.routes[t].agent];
        CHECK(a->prompt_len > 0 && a->n_cascade > 0);
    }
    orch_conf_free(&c);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_agents.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    put("search.md", "You find products.\n");
    put("spec.md", "You answer one product's facts.\n");
    put("empty.md", "");
    test_good();
    test_bad();
    test_bad_capacity();
    test_capacity_unused_model();
    test_context();
    test_shipped();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
