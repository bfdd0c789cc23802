/* agents.c - load the orchestrator's INI file (agents.h). */
#include "orchestrator/agents.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/decimal.h"
#include "base/ini_strict.h"
#include "base/mem.h"

static const char *const ctx_names[CTX__COUNT] = {"query", "clarification", "chosen_product",
                                                  "full"};

const char *context_policy_name(enum context_policy p)
{
    return (unsigned)p < CTX__COUNT ? ctx_names[p] : "?";
}

struct load {
    struct ini_strict ini; /* first: the reader's state */
    struct orch_conf *c;
    char dir[256]; /* the file's folder, for relative prompt paths */
    bool route_set[QT__COUNT];
    char route_agent[QT__COUNT][32];
    int route_line[QT__COUNT];
    int capacity_line[CAPACITY_MAX];
    char seen[256][96]; /* "section\nkey" already set, for duplicates */
    int n_seen;
};

/* ---- values ---- */

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || end == v || *end || *v == '-' || x < lo || x > hi)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
        return *out = true, 0;
    if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
        return *out = false, 0;
    return -1;
}

/* A comma-separated list into fixed slots; -1 when an item is empty or too long, or too many. */
static int parse_list(const char *v, char *slots, size_t slot_size, int max, int *n)
{
    *n = 0;
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        size_t l = len;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (!l || l >= slot_size || *n == max)
            return -1;
        memcpy(slots + (size_t)*n * slot_size, p, l);
        slots[(size_t)*n * slot_size + l] = '\0';
        (*n)++;
        p += len;
        if (*p == ',' && !*++p)
            return -1; /* a trailing comma */
    }
    return 0;
}

static bool valid_model(const char *m)
{
    const char *slash = strchr(m, '/');
    return slash && slash != m && slash[1] && strlen(m) < 160 &&
           (!strncmp(m, "openai/", 7) || !strncmp(m, "anthropic/", 10) ||
            !strncmp(m, "gemini/", 7));
}

static int read_prompt(struct load *st, struct agent *a, const char *v)
{
    char path[512];
    if (v[0] == '/' || !st->dir[0])
        snprintf(path, sizeof(path), "%s", v);
    else
        snprintf(path, sizeof(path), "%s/%s", st->dir, v);
    FILE *f = fopen(path, "rb");
    if (!f) {
        ini_strict_error(&st->ini, "agent %s: cannot read prompt %s: %s", a->name, path,
                         strerror(errno));
        return -1;
    }
    char *buf = xmalloc(65536 + 1);
    size_t n = fread(buf, 1, 65536 + 1, f);
    fclose(f);
    if (n > 65536 || n == 0) {
        xfree(buf);
        ini_strict_error(&st->ini, "agent %s: prompt %s is %s", a->name, path,
                         n ? "longer than 64 KiB" : "empty");
        return -1;
    }
    buf[n] = '\0';
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)buf, n, md);
    for (int i = 0; i < 6; i++)
        snprintf(a->prompt_version + 2 * i, 3, "%02x", md[i]);
    xfree(a->prompt);
    a->prompt = buf;
    a->prompt_len = n;
    snprintf(a->prompt_path, sizeof(a->prompt_path), "%s", v);
    return 0;
}

static bool valid_name(const char *n, size_t cap)
{
    size_t nl = strlen(n);
    return nl > 0 && nl < cap && strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_-") == nl;
}

/* ---- sections ---- */

static struct agent *agent_of(struct load *st, const char *section)
{
    const char *name = section + 6; /* after "agent " */
    for (int i = 0; i < st->c->n_agents; i++)
        if (!strcmp(st->c->agents[i].name, name))
            return &st->c->agents[i];
    return NULL;
}

static struct capacity_section *capacity_of(struct load *st, const char *section)
{
    const char *name = section + 9; /* after "capacity " */
    for (int i = 0; i < st->c->n_capacity; i++)
        if (!strcmp(st->c->capacity[i].name, name))
            return &st->c->capacity[i];
    return NULL;
}

static void capacity_section(struct load *st, const char *name)
{
    struct orch_conf *c = st->c;
    if (!valid_name(name + 9, sizeof(c->capacity[0].name)))
        ini_strict_error(&st->ini, "[%s]: a capacity name is 1-31 of a-z 0-9 _ -", name);
    else if (capacity_of(st, name))
        ini_strict_error(&st->ini, "[%s] appears twice", name);
    else if (c->n_capacity == CAPACITY_MAX)
        ini_strict_error(&st->ini, "more than %d capacity sections", CAPACITY_MAX);
    else {
        st->capacity_line[c->n_capacity] = st->ini.line;
        struct capacity_section *cs = &c->capacity[c->n_capacity++];
        snprintf(cs->name, sizeof(cs->name), "%s", name + 9);
        snprintf(cs->currency, sizeof(cs->currency), "USD");
    }
}

static void on_section(struct ini_strict *ini, const char *s, size_t len)
{
    struct load *st = (struct load *)ini;
    char name[64];
    size_t n = len < sizeof(name) ? len : sizeof(name) - 1;
    memcpy(name, s, n);
    name[n] = '\0';
    if (!strcmp(name, "classifier") || !strcmp(name, "turn"))
        return;
    if (!strncmp(name, "route ", 6)) {
        int t = query_type_from_name(name + 6, strlen(name + 6));
        if (t < 0)
            ini_strict_error(ini,
                             "[%s]: unknown query type (known: product_search, "
                             "product_fact, comparison, policy, order_status, chitchat, other)",
                             name);
        else if (st->route_set[t])
            ini_strict_error(ini, "[%s] appears twice", name);
        else
            st->route_set[t] = true, st->route_line[t] = ini->line;
        return;
    }
    if (!strncmp(name, "capacity ", 9)) {
        capacity_section(st, name);
        return;
    }
    if (!strncmp(name, "agent ", 6)) {
        if (!valid_name(name + 6, sizeof(st->c->agents[0].name)))
            ini_strict_error(ini, "[%s]: an agent name is 1-31 of a-z 0-9 _ -", name);
        else if (agent_of(st, name))
            ini_strict_error(ini, "[%s] appears twice", name);
        else if (st->c->n_agents == AGENTS_MAX)
            ini_strict_error(ini, "more than %d agents", AGENTS_MAX);
        else {
            struct agent *a = &st->c->agents[st->c->n_agents++];
            snprintf(a->name, sizeof(a->name), "%s", name + 6);
            a->max_steps = 4;
            a->context = CTX_QUERY;
        }
        return;
    }
    ini_strict_error(ini,
                     "unknown section [%s] (known: classifier, turn, agent NAME, route TYPE, "
                     "capacity NAME)",
                     name);
}

static int set_agent_key(struct load *st, struct agent *a, const char *k, const char *v)
{
    if (!strcmp(k, "prompt"))
        return read_prompt(st, a, v) < 0 ? 1 : 0;
    if (!strcmp(k, "tools"))
        return parse_list(v, a->tools[0], sizeof(a->tools[0]), AGENT_MAX_TOOLS, &a->n_tools);
    if (!strcmp(k, "cascade")) {
        if (parse_list(v, a->cascade[0], sizeof(a->cascade[0]), AGENT_MAX_CASCADE, &a->n_cascade) <
                0 ||
            !a->n_cascade)
            return -1;
        for (int i = 0; i < a->n_cascade; i++)
            if (!valid_model(a->cascade[i]))
                return -1;
        return 0;
    }
    if (!strcmp(k, "handoffs"))
        return parse_list(v, a->handoffs[0], sizeof(a->handoffs[0]), AGENT_MAX_HANDOFFS,
                          &a->n_handoffs);
    if (!strcmp(k, "context")) {
        for (int i = 0; i < CTX__COUNT; i++)
            if (!strcmp(v, ctx_names[i]))
                return a->context = (enum context_policy)i, 0;
        return -1;
    }
    if (!strcmp(k, "max_steps"))
        return parse_u32(v, 1, 16, &a->max_steps);
    if (!strcmp(k, "escalate_on_tool_failure"))
        return parse_bool(v, &a->escalate_on_tool_failure);
    return -2;
}

static const char *agent_hint(const char *k)
{
    if (!strcmp(k, "tools") || !strcmp(k, "handoffs"))
        return "a comma-separated list of names (at most 16 tools / 4 handoffs)";
    if (!strcmp(k, "cascade"))
        return "1-4 comma-separated provider/model (openai, anthropic or gemini), cheapest first";
    if (!strcmp(k, "context"))
        return "query, clarification, chosen_product or full";
    if (!strcmp(k, "max_steps"))
        return "an integer from 1 to 16";
    return "yes or no";
}

static int set_route_key(struct load *st, int t, const char *k, const char *v)
{
    struct route *r = &st->c->routes[t];
    if (!strcmp(k, "agent")) {
        if (!*v || strlen(v) >= sizeof(st->route_agent[t]))
            return -1;
        snprintf(st->route_agent[t], sizeof(st->route_agent[t]), "%s", v);
        return 0;
    }
    if (!strcmp(k, "max_tokens"))
        return parse_u32(v, 1, 32768, &r->max_tokens);
    if (!strcmp(k, "cacheable"))
        return parse_bool(v, &r->cacheable);
    if (!strcmp(k, "cache_ttl_s"))
        return parse_u32(v, 0, 30 * 86400, &r->cache_ttl_s);
    if (!strcmp(k, "max_cost_micros")) {
        char *end;
        errno = 0;
        long long m = *v >= '0' && *v <= '9' ? strtoll(v, &end, 10) : -1;
        if (m < 0 || *end || errno)
            return -1;
        r->max_cost_micros = m;
        return 0;
    }
    if (!strcmp(k, "verify")) {
        r->verify_lines = !strcmp(v, "lines");
        return r->verify_lines ? (r->verify = true, 0) : parse_bool(v, &r->verify);
    }
    if (!strcmp(k, "format")) {
        if (strcmp(v, "table") && strcmp(v, "any"))
            return -1;
        r->want_table = !strcmp(v, "table");
        return 0;
    }
    if (!strcmp(k, "semantic_threshold")) {
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || !(d > 0 && d <= 1))
            return -1;
        r->semantic_threshold = (float)d;
        return 0;
    }
    return -2;
}

static int parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = *v >= '0' && *v <= '9' ? strtoull(v, &end, 10) : 0;
    if (*v < '0' || *v > '9' || errno || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* Printable ASCII without spaces, 1..cap-1 bytes (a model id or a URL). */
static int copy_token(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (!n || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i] <= ' ' || v[i] > '~')
            return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

/* An absolute http(s) URL with a host, or an absolute path ("/ptu/NAME/v1", not "//host"). */
static bool valid_capacity_url(const char *v)
{
    if (!strncmp(v, "http://", 7))
        return v[7] && v[7] != '/';
    if (!strncmp(v, "https://", 8))
        return v[8] && v[8] != '/';
    return v[0] == '/' && v[1] != '/';
}

static int set_capacity_key(struct capacity_section *cs, const char *k, const char *v)
{
    if (!strcmp(k, "model")) {
        if (!valid_model(v))
            return -1;
        snprintf(cs->model, sizeof(cs->model), "%s", v);
        return 0;
    }
    if (!strcmp(k, "deployment_model"))
        return copy_token(cs->deployment_model, sizeof(cs->deployment_model), v);
    if (!strcmp(k, "base_url")) {
        char url[sizeof(cs->base_url)];
        if (copy_token(url, sizeof(url), v) < 0 || !valid_capacity_url(url))
            return -1;
        memcpy(cs->base_url, url, sizeof(url));
        return 0;
    }
    if (!strcmp(k, "tpm"))
        return parse_u64(v, 1, 1000000000000ull, &cs->tpm);
    if (!strcmp(k, "streams"))
        return parse_u32(v, 1, 1000000, &cs->streams);
    if (!strcmp(k, "hourly_price"))
        return (cs->hourly_micros = decimal_parse_micros(v, strlen(v))) < 0 ? -1 : 0;
    if (!strcmp(k, "currency")) {
        if (strcmp(v, "USD") != 0 && strcmp(v, "INR") != 0)
            return -1;
        snprintf(cs->currency, sizeof(cs->currency), "%s", v);
        return 0;
    }
    if (!strcmp(k, "region")) {
        size_t n = strlen(v);
        if (n >= sizeof(cs->region) ||
            strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
            return -1;
        snprintf(cs->region, sizeof(cs->region), "%s", v);
        return 0;
    }
    return -2;
}

static const char *capacity_hint(const char *k)
{
    if (!strcmp(k, "model"))
        return "provider/model (openai, anthropic or gemini), as in a cascade";
    if (!strcmp(k, "deployment_model"))
        return "a model id (printable, no spaces)";
    if (!strcmp(k, "base_url"))
        return "an http(s):// URL, or an absolute path such as /ptu/NAME/v1";
    if (!strcmp(k, "tpm"))
        return "tokens per minute, an integer from 1 to 10^12";
    if (!strcmp(k, "streams"))
        return "concurrent streams, an integer from 1 to 1000000";
    if (!strcmp(k, "hourly_price"))
        return "a non-negative decimal with at most six decimals (e.g. 4.00)";
    if (!strcmp(k, "currency"))
        return "USD or INR";
    return "a label of at most 31 letters, digits, '_', '.' or '-'";
}

static int set_plain_key(struct load *st, const char *sec, const char *k, const char *v)
{
    struct orch_conf *c = st->c;
    if (!strcmp(sec, "classifier")) {
        if (!strcmp(k, "model"))
            return *v && !valid_model(v)
                       ? -1
                       : (snprintf(c->classifier_model, sizeof(c->classifier_model), "%s", v), 0);
        if (!strcmp(k, "deadline_ms"))
            return parse_u32(v, 1, 60000, &c->classifier_deadline_ms);
        if (!strcmp(k, "max_tokens"))
            return parse_u32(v, 1, 4096, &c->classifier_max_tokens);
        if (!strcmp(k, "min_confidence")) {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || !(d >= 0 && d <= 1))
                return -1;
            c->min_confidence = (float)d;
            return 0;
        }
        return -2;
    }
    if (!strcmp(k, "max_handoffs"))
        return parse_u32(v, 0, 8, &c->max_handoffs);
    if (!strcmp(k, "hold_opening"))
        return parse_bool(v, &c->hold_opening);
    return -2;
}

static int on_key(void *user, const char *sec, const char *k, const char *v)
{
    struct load *st = user;
    if (st->ini.err_line)
        return 0;
    char id[96];
    snprintf(id, sizeof(id), "%.63s\n%.31s", sec, k);
    for (int i = 0; i < st->n_seen; i++)
        if (!strcmp(st->seen[i], id)) {
            ini_strict_error(&st->ini, "duplicate key '%.31s' in [%s]", k, sec);
            return 0;
        }
    if (st->n_seen < 256)
        snprintf(st->seen[st->n_seen++], sizeof(st->seen[0]), "%s", id);
    int rc;
    const char *hint = "see docs/orchestrator.md";
    if (!strncmp(sec, "agent ", 6)) {
        struct agent *a = agent_of(st, sec);
        rc = a ? set_agent_key(st, a, k, v) : 1;
        hint = agent_hint(k);
    } else if (!strncmp(sec, "capacity ", 9)) {
        struct capacity_section *cs = capacity_of(st, sec);
        rc = cs ? set_capacity_key(cs, k, v) : 1;
        hint = capacity_hint(k);
    } else if (!strncmp(sec, "route ", 6)) {
        int t = query_type_from_name(sec + 6, strlen(sec + 6));
        rc = t < 0 ? 1 : set_route_key(st, t, k, v);
        hint = !strcmp(k, "agent")                ? "the name of an [agent NAME] section"
               : !strcmp(k, "cacheable")          ? "yes or no"
               : !strcmp(k, "verify")             ? "yes, lines or no"
               : !strcmp(k, "format")             ? "table or any"
               : !strcmp(k, "semantic_threshold") ? "a similarity above 0, at most 1 (e.g. 0.9)"
                                                  : "an integer in range";
    } else {
        rc = set_plain_key(st, sec, k, v);
        if (!strcmp(k, "model"))
            hint = "provider/model (openai, anthropic or gemini), or empty for rules only";
        else if (!strcmp(k, "min_confidence"))
            hint = "a number from 0 to 1";
        else if (!strcmp(k, "hold_opening"))
            hint = "yes or no";
        else
            hint = "an integer in range";
    }
    if (rc == -2)
        ini_strict_error(&st->ini, "unknown key '%.40s' in [%s]", k, sec);
    else if (rc < 0)
        ini_strict_error(&st->ini, "[%s] %s = '%.60s': expected %s", sec, k, v, hint);
    return 1;
}

/* ---- whole-file checks ---- */

static int check_all(struct load *st, const char *path, char *err, size_t errlen)
{
    struct orch_conf *c = st->c;
    for (int t = 0; t < QT__COUNT; t++) {
        if (!st->route_set[t]) {
            snprintf(err, errlen, "%s: no [route %s] (every query type needs one)", path,
                     query_type_name((enum query_type)t));
            return -1;
        }
        c->routes[t].agent = orch_agent_find(c, st->route_agent[t]);
        if (c->routes[t].agent < 0) {
            snprintf(err, errlen, "%s:%d: [route %s] agent '%s' is not an [agent NAME] section",
                     path, st->route_line[t], query_type_name((enum query_type)t),
                     st->route_agent[t]);
            return -1;
        }
        if (c->routes[t].semantic_threshold > 0 && !c->routes[t].cache_ttl_s) {
            snprintf(err, errlen,
                     "%s:%d: [route %s] semantic_threshold needs cache_ttl_s (how long a "
                     "semantic cache entry lives)",
                     path, st->route_line[t], query_type_name((enum query_type)t));
            return -1;
        }
    }
    for (int i = 0; i < c->n_agents; i++) {
        const struct agent *a = &c->agents[i];
        const char *miss = !a->prompt ? "prompt" : !a->n_cascade ? "cascade" : NULL;
        if (miss) {
            snprintf(err, errlen, "%s: [agent %s] has no %s", path, a->name, miss);
            return -1;
        }
        for (int h = 0; h < a->n_handoffs; h++)
            if (orch_agent_find(c, a->handoffs[h]) < 0) {
                snprintf(err, errlen, "%s: [agent %s] hands off to unknown agent '%s'", path,
                         a->name, a->handoffs[h]);
                return -1;
            }
    }
    return 0;
}

/* Every capacity section names its model, endpoint and capacity; one section per model. */
static int check_capacity(struct load *st, const char *path, char *err, size_t errlen)
{
    struct orch_conf *c = st->c;
    for (int i = 0; i < c->n_capacity; i++) {
        struct capacity_section *cs = &c->capacity[i];
        const char *miss = !cs->model[0]      ? "model"
                           : !cs->base_url[0] ? "base_url"
                           : !cs->tpm         ? "tpm"
                           : !cs->streams     ? "streams"
                                              : NULL;
        if (miss) {
            snprintf(err, errlen, "%s:%d: [capacity %s] has no %s", path, st->capacity_line[i],
                     cs->name, miss);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(c->capacity[j].model, cs->model)) {
                snprintf(err, errlen,
                         "%s:%d: [capacity %s] serves %s, already served by [capacity %s] (one "
                         "capacity section per model)",
                         path, st->capacity_line[i], cs->name, cs->model, c->capacity[j].name);
                return -1;
            }
        if (!cs->deployment_model[0])
            snprintf(cs->deployment_model, sizeof(cs->deployment_model), "%s",
                     strchr(cs->model, '/') + 1);
    }
    return 0;
}

/* Load the orchestrator's file; see the header. */
int orch_conf_load(struct orch_conf *c, const char *path, char *err, size_t errlen)
{
    struct load *st = xcalloc(1, sizeof(*st));
    int ret = -1;
    memset(c, 0, sizeof(*c));
    c->classifier_deadline_ms = 300;
    c->classifier_max_tokens = 64;
    c->max_handoffs = 2;
    st->c = c;
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(st->dir, sizeof(st->dir), "%.*s", (int)(slash - path), path);
    st->ini.on_section = on_section;
    st->ini.f = fopen(path, "r");
    if (!st->ini.f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out_free;
    }
    int rc = ini_strict_parse(&st->ini, on_key, st);
    fclose(st->ini.f);
    if (ini_strict_report(&st->ini, rc, path, err, errlen) < 0 ||
        check_all(st, path, err, errlen) || check_capacity(st, path, err, errlen))
        goto out_free;
    ret = 0;
out_free:
    xfree(st);
    if (ret < 0)
        orch_conf_free(c);
    return ret;
}

void orch_conf_free(struct orch_conf *c)
{
    for (int i = 0; i < AGENTS_MAX; i++)
        xfree(c->agents[i].prompt);
    memset(c, 0, sizeof(*c));
}

int orch_agent_find(const struct orch_conf *c, const char *name)
{
    for (int i = 0; i < c->n_agents; i++)
        if (!strcmp(c->agents[i].name, name))
            return i;
    return -1;
}

int orch_capacity_for_model(const struct orch_conf *c, const char *model)
{
    for (int i = 0; i < c->n_capacity; i++)
        if (!strcmp(c->capacity[i].model, model))
            return i;
    return -1;
}

bool orch_agent_has_tool(const struct agent *a, const char *name)
{
    for (int i = 0; i < a->n_tools; i++)
        if (!strcmp(a->tools[i], name))
            return true;
    return false;
}

/* Decide a handoff; see the header. */
enum handoff_verdict orch_handoff_check(const struct orch_conf *c, const int *chain, int n, int to)
{
    if (n < 1 || to < 0 || to >= c->n_agents)
        return HANDOFF_NOT_ALLOWED;
    const struct agent *from = &c->agents[chain[n - 1]];
    bool listed = false;
    for (int h = 0; h < from->n_handoffs; h++)
        listed |= !strcmp(from->handoffs[h], c->agents[to].name);
    if (!listed)
        return HANDOFF_NOT_ALLOWED;
    for (int i = 0; i < n; i++)
        if (chain[i] == to)
            return HANDOFF_LOOP;
    if ((uint32_t)(n - 1) >= c->max_handoffs)
        return HANDOFF_LIMIT;
    return HANDOFF_OK;
}
