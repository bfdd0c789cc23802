/* tool.h - tools declared in configuration (a JSON file, docs/tools.md): what the model is told
 * (name, description, parameters as JSON Schema), how a call is made (an HTTP binding), and how
 * its result is cut down before a model sees it (the shaper). Loading is strict: every mistake
 * is an error naming the tool and the key, at start-up.
 *
 * Everything here is pure (no I/O but reading the file and the environment at load): argument
 * validation, building a call's URL and body, shaping a result. The runner that makes the calls
 * on the worker's curl multi is tool_run.h. */
#ifndef TRILEMMA_ORCHESTRATOR_TOOL_H
#define TRILEMMA_ORCHESTRATOR_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "stream/json.h"
#include "stream/llm.h"

#define TOOL_MAX_HEADERS 16
#define TOOL_MAX_KEEP 32

struct js_schema; /* orchestrator/json_schema.h */

enum tool_method { TOOL_GET = 0, TOOL_POST };

/* The result shaper: results are JSON; an array (the body itself, or the one at `items`) is cut
 * to its first top_k elements; objects (the body, or each element) keep only the listed fields;
 * the shaped text is at most max_bytes (whole elements are dropped from the end to fit). */
struct tool_shaper {
    char *items;               /* JSON Pointer of the array in the body, "" = the body */
    char *keep[TOOL_MAX_KEEP]; /* dotted paths ("price", "specs.battery_mah"); none = all */
    size_t n_keep;
    uint32_t top_k;     /* 0 = all elements */
    uint32_t max_bytes; /* 0 = no cap */
};

struct tool_def {
    char *name;
    char *description;
    char *parameters_json; /* the schema's text as in the file: what the model is shown */
    struct js_schema *schema;
    enum tool_method method;
    char *base_url; /* resolved at load: the environment variable's value, else the default */
    char *path;     /* the URL template: "/catalog/products/{id}/offers" */
    char *headers[TOOL_MAX_HEADERS + 1]; /* "Name: value" (values resolved), NULL-terminated */
    uint32_t timeout_ms;
    uint32_t retries; /* extra attempts after a retryable failure (connect, 5xx, 429, 408) */
    uint32_t cache_ttl_s;
    struct tool_shaper shape;
};

struct tool_set;

/* Load the tools file at path. Environment variables named by the file (base URLs, header
 * values) are read now. Returns the set (the caller owns it: tool_set_free), or NULL with a
 * message in err such as "config/tools.json: tool 'get_offers': http.path: placeholder {sku} is
 * not a parameter". */
struct tool_set *tool_set_load(const char *path, char *err, size_t errlen);

/* As tool_set_load, from text in memory; origin names it in messages. */
struct tool_set *tool_set_parse(const char *text, size_t len, const char *origin, char *err,
                                size_t errlen);
void tool_set_free(struct tool_set *ts);

size_t tool_set_count(const struct tool_set *ts);
const struct tool_def *tool_set_at(const struct tool_set *ts, size_t i);
/* The tool called name (name_len bytes), or NULL. */
const struct tool_def *tool_set_find(const struct tool_set *ts, const char *name, size_t name_len);

/* The definition as a model request carries it (pointers into t). */
void tool_to_llm(const struct tool_def *t, struct llm_tool *out);

/* Load a call's arguments (JSON text; NULL or "" = {}) into d and check them against t's schema.
 * Returns 0, or -EINVAL with "NAME: PATH: reason" in err (e.g. "get_offers: pincode: expected a
 * string matching ^[0-9]{6}$", "get_offers: arguments are not valid JSON"). On success d holds
 * the arguments (for tool_build_call). */
int tool_check_args(const struct tool_def *t, json_doc *d, const char *args, size_t len, char *err,
                    size_t errlen);

/* The request for a call whose arguments are loaded in d (checked): url = base + path with each
 * {param} replaced by its value percent-encoded (a missing one is -EINVAL with err), then for GET
 * the other arguments as a query string in the schema's property order (strings as they are,
 * other values as their JSON text; null is left out). For POST body gets the arguments' JSON
 * (NULL body for GET: nothing written). Returns 0 or -EINVAL. */
int tool_build_call(const struct tool_def *t, json_doc *d, struct buf *url, struct buf *body,
                    char *err, size_t errlen);

/* Shape a result body (raw, len bytes) with t's shaper into out (appended). A body that is not
 * JSON is kept as text, cut at max_bytes on a UTF-8 boundary. d is scratch. Returns 0. */
int tool_shape(const struct tool_def *t, json_doc *d, const char *raw, size_t len, struct buf *out);

/* Append JSON text s[0..n) without insignificant whitespace to out (valid JSON in, valid out). */
void tool_json_minify(struct buf *out, const char *s, size_t n);

#endif
