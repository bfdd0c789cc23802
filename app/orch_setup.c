/* orch_setup.c - set-up of the orchestrator's state from the application's configuration (see
 * the header). It lives in app/ so that orchestrator/ never includes app/config.h: the modules
 * take their own structs (turn_plan_conf, agent_plan_conf, model routes), filled here. */
#include "app/orch_setup.h"

#include <stdio.h>
#include <string.h>

#include "base/redact.h"
#include "base/log.h"
#include "base/mem.h"
#include "orchestrator/agent_plan.h"
#include "orchestrator/capacity.h"
#include "orchestrator/exact_cache.h"
#include "orchestrator/semcache.h"
#include "orchestrator/semcache_layer.h"
#include "orchestrator/prices.h"
#include "orchestrator/turn_plan.h"
#include "store/capacity_store.h"

struct orchestrator {
    bool echo;
    struct price_table *prices;
    struct turn_plan_conf plan;
    struct responder responder;
    /* agents mode ([orchestrator] agents_file) */
    struct orch_conf *agents;
    struct tool_set *tools;
    struct agent_plan_conf agent_plan;
    /* the cache layers (docs/caching.md) */
    struct norm_words *words;
    struct exact_cache_conf exact;
    struct tool_cache_conf tool_cache;
    struct semcache *semantic; /* NULL: no embeddings_url or no type with a threshold */
    struct capacity *capacity; /* NULL: no [capacity NAME] in the agents file */
};

/* Fill r from "provider/model" with the configured base URL and key of its provider. */
static int parse_route(struct orchestrator *o, const struct config *c, const char *spec, size_t len,
                       struct model_route *r, char *err, size_t errlen)
{
    const char *slash = memchr(spec, '/', len);
    int p = slash ? llm_provider_from_name(spec, (size_t)(slash - spec)) : -1;
    size_t ml = slash ? len - (size_t)(slash - spec) - 1 : 0;
    if (p < 0 || ml == 0 || ml >= sizeof(r->model)) {
        snprintf(err, errlen,
                 "model '%.*s': expected provider/model with provider openai, anthropic or "
                 "gemini (or \"echo\")",
                 (int)(len > 100 ? 100 : len), spec);
        return -1;
    }
    r->provider = (enum llm_provider)p;
    memcpy(r->model, slash + 1, ml);
    r->model[ml] = '\0';
    const char *base[] = {c->openai_base_url, c->anthropic_base_url, c->gemini_base_url};
    const char *key[] = {c->openai_api_key, c->anthropic_api_key, c->gemini_api_key};
    const char *envs[] = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"};
    snprintf(r->base_url, sizeof(r->base_url), "%s", base[p]);
    size_t bl = strlen(r->base_url);
    while (bl && r->base_url[bl - 1] == '/')
        r->base_url[--bl] = '\0';
    r->key = key[p];
    if (!r->key[0] && strcmp(base[p], llm_default_base_url(r->provider)) == 0) {
        snprintf(err, errlen, "model %s/%s needs %s (or a *_BASE_URL of a keyless server)",
                 llm_provider_name(r->provider), r->model, envs[p]);
        return -1;
    }
    if (!prices_find(o->prices, llm_provider_name(r->provider), r->model, "standard", NULL))
        log_warn("no price for %s/%s in the price file: its cost will show as 0",
                 llm_provider_name(r->provider), r->model);
    return 0;
}

static int add_route(struct orchestrator *o, const struct config *c, const char *spec, size_t len,
                     char *err, size_t errlen)
{
    struct turn_plan_conf *pc = &o->plan;
    if (pc->n_routes == MODEL_CALL_MAX_ROUTES) {
        snprintf(err, errlen, "more than %d routes", MODEL_CALL_MAX_ROUTES);
        return -1;
    }
    if (parse_route(o, c, spec, len, &pc->routes[pc->n_routes], err, errlen) < 0)
        return -1;
    pc->n_routes++;
    return 0;
}

/* The provisioned route of capacity section cs: its URL (a path is resolved against the origin
 * of its provider's base URL, RFC 3986 5.2: "/ptu/x/v1" on "http://h:1/v1" is
 * "http://h:1/ptu/x/v1"), the provider's key, tier provisioned, overflow to the next route. */
static int capacity_route(const struct model_route *std, const struct capacity_section *cs,
                          struct model_route *r, char *err, size_t errlen)
{
    *r = *std;
    snprintf(r->model, sizeof(r->model), "%s", cs->deployment_model);
    snprintf(r->tier, sizeof(r->tier), "provisioned");
    snprintf(r->deployment, sizeof(r->deployment), "%s", cs->name);
    snprintf(r->region, sizeof(r->region), "%s", cs->region);
    r->overflow = true;
    const char *url = cs->base_url;
    int n;
    if (url[0] == '/') {
        const char *scheme = strstr(std->base_url, "://");
        size_t origin = scheme ? (size_t)(scheme + 3 - std->base_url) : 0;
        origin += scheme ? strcspn(std->base_url + origin, "/?#") : 0;
        n = snprintf(r->base_url, sizeof(r->base_url), "%.*s%s", (int)origin, std->base_url, url);
        if (!scheme) {
            snprintf(err, errlen,
                     "agents: [capacity %s] base_url %s: the provider's base URL has "
                     "no origin to resolve it against",
                     cs->name, url);
            return -1;
        }
    } else {
        n = snprintf(r->base_url, sizeof(r->base_url), "%s", url);
    }
    if (n < 0 || (size_t)n >= sizeof(r->base_url)) {
        snprintf(err, errlen, "agents: [capacity %s] base_url is too long once resolved", cs->name);
        return -1;
    }
    size_t bl = strlen(r->base_url);
    while (bl && r->base_url[bl - 1] == '/')
        r->base_url[--bl] = '\0';
    return 0;
}

/* The deployments' hourly prices, for the store's cost reports to apportion (process-wide). */
static int capacity_prices(const struct orch_conf *oc, char *err, size_t errlen)
{
    struct store_capacity_price p[CAPACITY_MAX];
    for (int d = 0; d < oc->n_capacity; d++) {
        const struct capacity_section *cs = &oc->capacity[d];
        p[d] = (struct store_capacity_price){.hourly_micros = cs->hourly_micros};
        snprintf(p[d].deployment, sizeof(p[d].deployment), "%s", cs->name);
        snprintf(p[d].currency, sizeof(p[d].currency), "%s", cs->currency);
    }
    int rc = store_set_capacity_prices(p, (size_t)oc->n_capacity);
    if (rc < 0)
        snprintf(err, errlen, "agents: the capacity sections' hourly prices were refused (%s)",
                 strerror(-rc));
    return rc < 0 ? -1 : 0;
}

/* The provisioned deployments: a route each, the deployment of each cascade step, the tracker
 * with this pod's share ([capacity] pods; 0: 1 until the store's heartbeat says). */
static int setup_capacity(struct orchestrator *o, const struct config *c, char *err, size_t errlen)
{
    const struct orch_conf *oc = o->agents;
    struct agent_plan_conf *ap = &o->agent_plan;
    struct capacity_spec specs[CAPACITY_MAX];
    for (int i = 0; i < AGENTS_MAX; i++)
        for (int k = 0; k < AGENT_MAX_CASCADE; k++)
            ap->capacity_of[i][k] = -1;
    for (int d = 0; d < oc->n_capacity; d++) {
        const struct capacity_section *cs = &oc->capacity[d];
        struct model_route std;
        if (parse_route(o, c, cs->model, strlen(cs->model), &std, err, errlen) < 0 ||
            capacity_route(&std, cs, &ap->provisioned[d], err, errlen) < 0)
            return -1;
        specs[d] = (struct capacity_spec){.tpm = cs->tpm, .streams = cs->streams};
        snprintf(specs[d].name, sizeof(specs[d].name), "%s", cs->name);
        bool used = false;
        for (int i = 0; i < oc->n_agents; i++)
            for (int k = 0; k < oc->agents[i].n_cascade; k++)
                if (!strcmp(oc->agents[i].cascade[k], cs->model))
                    ap->capacity_of[i][k] = d, used = true;
        if (!used)
            log_warn("agents: [capacity %s] serves %s, which no cascade names: it takes no call",
                     cs->name, cs->model);
    }
    o->capacity = capacity_create(specs, oc->n_capacity, c->capacity_pods ? c->capacity_pods : 1);
    ap->capacity = o->capacity;
    return capacity_prices(oc, err, errlen);
}

/* The semantic cache, second: on with an embeddings URL and a route with semantic_threshold. */
static void setup_semantic(struct orchestrator *o, const struct config *c)
{
    struct semcache_conf sc = {
        .embeddings_url = c->cache_embeddings_url,
        .embeddings_model = c->cache_embeddings_model,
        .embeddings_key = c->cache_embeddings_key,
        .timeout_ms = c->cache_embeddings_timeout_ms,
        .max_entries = c->cache_semantic_max_entries,
        .sync_ms = c->cache_semantic_sync_ms,
        .catalog_version = c->cache_catalog_version,
    };
    for (int t = 0; t < QT__COUNT && sc.n_types < SEMCACHE_MAX_TYPES; t++) {
        float th = o->agents->routes[t].semantic_threshold;
        if (th > 0) {
            snprintf(sc.types[sc.n_types].type, sizeof(sc.types[0].type), "%s",
                     query_type_name((enum query_type)t));
            sc.types[sc.n_types++].threshold = th;
        }
    }
    if (!c->cache_embeddings_url[0] || !sc.n_types)
        return;
    struct agent_plan_conf *ap = &o->agent_plan;
    if (ap->n_cache_layers >= AC_MAX_LAYERS)
        return;
    o->semantic = semcache_create(&sc);
    ap->cache_layers[ap->n_cache_layers++] =
        (struct ac_layer_reg){&semcache_layer_ops, o->semantic};
    log_info("cache: semantic cache on (%d query types, embeddings %s at %s)", sc.n_types,
             c->cache_embeddings_model, c->cache_embeddings_url);
}

/* The answer-cache layers of the agents' plans, in order: exact first (docs/caching.md). */
static int setup_caches(struct orchestrator *o, const struct config *c, char *err, size_t errlen)
{
    struct agent_plan_conf *ap = &o->agent_plan;
    ap->cache_lookup_timeout_ms = c->cache_lookup_timeout_ms;
    if (c->cache_words_file[0]) {
        char e[300];
        o->words = norm_words_load(c->cache_words_file, e, sizeof(e));
        if (!o->words) {
            snprintf(err, errlen, "cache: words_file: %s", e);
            return -1;
        }
    }
    if (c->cache_exact) {
        o->exact = (struct exact_cache_conf){
            .lru_bytes = c->cache_exact_lru_bytes,
            .shared = c->cache_exact_shared,
            .words = o->words,
        };
        ap->cache_layers[ap->n_cache_layers++] = (struct ac_layer_reg){&exact_cache_ops, &o->exact};
    }
    if (c->cache_tool) {
        o->tool_cache = (struct tool_cache_conf){
            .lru_bytes = c->cache_tool_lru_bytes,
            .shared = c->cache_tool_shared,
            .max_stale_s = c->cache_tool_max_stale_s,
            .currency = c->currency,
        };
        ap->tool_cache = &o->tool_cache;
    }
    setup_semantic(o, c);
    return 0;
}

/* Agents mode: the agents file, the tools file, and every cascade step as a route. */
static int setup_agents(struct orchestrator *o, const struct config *c, char *err, size_t errlen)
{
    char e[400];
    o->agents = xcalloc(1, sizeof(*o->agents));
    if (orch_conf_load(o->agents, c->agents_file, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "agents: %s", e);
        return -1;
    }
    if (!c->tools_file[0]) {
        snprintf(err, errlen,
                 "agents: [orchestrator] agents_file needs [tools] tools_file "
                 "(config/tools.json for the commerce API)");
        return -1;
    }
    o->tools = tool_set_load(c->tools_file, e, sizeof(e));
    if (!o->tools) {
        snprintf(err, errlen, "tools: %s", e);
        return -1;
    }
    struct agent_plan_conf *ap = &o->agent_plan;
    ap->orch = o->agents;
    ap->tools = o->tools;
    ap->policy = &o->plan.policy;
    ap->pricing = &o->plan.pricing;
    ap->prefetch_tool = "search_products";
    ap->turn_max_micros = (int64_t)c->budget_turn_max_micros;
    for (int i = 0; i < o->agents->n_agents; i++) {
        const struct agent *a = &o->agents->agents[i];
        for (int t = 0; t < a->n_tools; t++)
            if (!tool_set_find(o->tools, a->tools[t], strlen(a->tools[t]))) {
                snprintf(err, errlen, "agents: [agent %s] tool '%s' is not in %s", a->name,
                         a->tools[t], c->tools_file);
                return -1;
            }
        for (int k = 0; k < a->n_cascade; k++)
            if (parse_route(o, c, a->cascade[k], strlen(a->cascade[k]), &ap->routes[i][k], err,
                            errlen) < 0)
                return -1;
    }
    const char *cm = o->agents->classifier_model;
    if (cm[0] && parse_route(o, c, cm, strlen(cm), &ap->classifier, err, errlen) < 0)
        return -1;
    if (setup_capacity(o, c, err, errlen) < 0)
        return -1;
    if (setup_caches(o, c, err, errlen) < 0)
        return -1;
    o->plan.agents = ap;
    return 0;
}

static int add_routes(struct orchestrator *o, const struct config *c, char *err, size_t errlen)
{
    if (add_route(o, c, c->model, strlen(c->model), err, errlen) < 0)
        return -1;
    for (const char *p = c->fallbacks; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if (n && add_route(o, c, p, n, err, errlen) < 0)
            return -1;
        p += n;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

static void fill_plan(struct orchestrator *o, const struct config *c, int64_t usd_to_inr)
{
    struct turn_plan_conf *pc = &o->plan;
    pc->policy = (struct model_call_policy){
        .connect_timeout_ms = c->connect_timeout_ms,
        .first_token_timeout_ms = c->first_token_timeout_ms,
        .stall_timeout_ms = c->stall_timeout_ms,
        .max_retries = c->max_retries,
        .retry_base_ms = c->retry_base_ms,
    };
    pc->pricing = (struct model_pricing){
        .prices = o->prices,
        .currency = c->currency,
        .usd_to_inr_micros = usd_to_inr,
    };
    pc->system_prompt = c->system_prompt;
    pc->max_tokens = c->max_tokens;
    turn_plan_responder(pc, &o->responder);
}

/* Build the orchestrator's state; see the header. */
struct orchestrator *orchestrator_create(const struct config *c, char *err, size_t errlen)
{
    int64_t usd_to_inr = prices_parse_micros(c->usd_to_inr, strlen(c->usd_to_inr));
    if (usd_to_inr <= 0) {
        snprintf(err, errlen, "usd_to_inr: expected a positive decimal");
        return NULL;
    }
    struct orchestrator *o = xcalloc(1, sizeof(*o));
    if (strcmp(c->model, "echo") == 0) {
        o->echo = true;
        o->responder = echo_responder;
        return o;
    }
    o->prices = prices_load(c->price_file, err, errlen);
    if (!o->prices)
        goto out_free;
    if (add_routes(o, c, err, errlen) < 0)
        goto out_destroy;
    if (c->agents_file[0] && setup_agents(o, c, err, errlen) < 0)
        goto out_destroy;
    fill_plan(o, c, usd_to_inr);
    return o;
out_destroy:
    orchestrator_destroy(o);
    return NULL;
out_free:
    xfree(o);
    return NULL;
}

void orchestrator_destroy(struct orchestrator *o)
{
    if (!o)
        return;
    if (o->agents) {
        orch_conf_free(o->agents);
        xfree(o->agents);
    }
    tool_set_free(o->tools);
    norm_words_free(o->words);
    semcache_destroy(o->semantic);
    capacity_destroy(o->capacity);
    prices_free(o->prices);
    xfree(o);
}

/* See orch_setup.h. */
struct capacity *orchestrator_capacity(const struct orchestrator *o)
{
    return o->capacity;
}

const struct responder *orchestrator_responder(const struct orchestrator *o)
{
    return &o->responder;
}

void orchestrator_describe(const struct orchestrator *o, char *out, size_t cap)
{
    if (o->echo) {
        snprintf(out, cap, "echo");
        return;
    }
    size_t off = 0;
    const struct turn_plan_conf *pc = &o->plan;
    if (o->agents) {
        snprintf(out, cap, "agents (%d) with %zu tools; classifier %s", o->agents->n_agents,
                 tool_set_count(o->tools),
                 o->agents->classifier_model[0] ? o->agents->classifier_model : "rules only");
        return;
    }
    for (int i = 0; i < pc->n_routes && off < cap; i++) {
        char url[sizeof(pc->routes[i].base_url)];
        url_redact(pc->routes[i].base_url, url, sizeof(url)); /* this line is logged */
        off +=
            (size_t)snprintf(out + off, cap - off, "%s%s/%s at %s", i ? " -> " : "",
                             llm_provider_name(pc->routes[i].provider), pc->routes[i].model, url);
    }
}
