/* sim_embed_api.c - POST /v1/embeddings in OpenAI's shape, answered at once from sim_embed().
 *
 * Request: {"model": "...", "input": "text" | ["text", ...], "dimensions"?: N,
 * "encoding_format"?: "float"}. Response: {"object": "list", "data": [{"object": "embedding",
 * "index": i, "embedding": [floats]}], "model", "usage": {"prompt_tokens", "total_tokens"}}.
 * Bad input gets OpenAI's error shape with a 400 and says what is wrong. */
#include "loadtest/sim/sim_embed.h"
#include "loadtest/sim/sim_embed_api.h"

#include "base/buf.h"
#include "stream/json.h"
#include "stream/jsonw.h"

#include <stdio.h>
#include <string.h>

enum { EMBED_MAX_INPUTS = 2048, EMBED_MAX_BYTES = 32768 };

static void reply_400(struct conn *c, const char *msg)
{
    struct buf b = {0};
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "error");
    jw_obj_begin(&w);
    jw_kstr(&w, "message", msg);
    jw_kstr(&w, "type", "invalid_request_error");
    jw_key(&w, "param");
    jw_raw(&w, "null", 4);
    jw_key(&w, "code");
    jw_raw(&w, "null", 4);
    jw_obj_end(&w);
    jw_obj_end(&w);
    conn_http_reply(c, 400, "application/json; charset=utf-8", buf_begin(&b), buf_size(&b), NULL);
    buf_free(&b);
}

/* The input texts' pointer and count: a string is one input. Returns NULL (valid) or a message. */
static const char *check_input(json_doc *d, size_t *n)
{
    enum json_type t = json_type_at(d, "/input");
    if (t == JSON_STRING) {
        *n = 1;
        return NULL;
    }
    if (t != JSON_ARRAY || json_count(d, "/input", n) < 0 || *n == 0)
        return "'input' must be a non-empty string or a non-empty array of strings";
    if (*n > EMBED_MAX_INPUTS)
        return "'input' has more than 2048 items";
    for (size_t i = 0; i < *n; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/input/%zu", i);
        if (json_type_at(d, p) != JSON_STRING)
            return "'input' items must be strings (token arrays are not simulated)";
    }
    return NULL;
}

static const char *check_options(json_doc *d, int64_t *dim)
{
    const char *s;
    size_t n;
    if (json_type_at(d, "/model") != JSON_STRING)
        return "you must provide a model parameter";
    if (json_type_at(d, "/encoding_format") != JSON_MISSING &&
        (json_get_string(d, "/encoding_format", &s, &n) < 0 || n != 5 || memcmp(s, "float", 5)))
        return "'encoding_format' must be \"float\" (base64 is not simulated)";
    *dim = SIM_EMBED_DIM;
    if (json_type_at(d, "/dimensions") != JSON_MISSING &&
        (json_get_int(d, "/dimensions", dim) < 0 || *dim < 1 || *dim > SIM_EMBED_DIM))
        return "'dimensions' must be an integer from 1 to 256";
    return NULL;
}

static void write_one(struct jsonw *w, json_doc *d, size_t i, bool array, size_t dim,
                      size_t *tokens)
{
    const char *s;
    size_t n;
    char p[32];
    snprintf(p, sizeof(p), array ? "/input/%zu" : "/input", i);
    json_get_string(d, p, &s, &n);
    float v[SIM_EMBED_DIM];
    *tokens += sim_embed(s, n > EMBED_MAX_BYTES ? EMBED_MAX_BYTES : n, v, dim);
    jw_obj_begin(w);
    jw_kstr(w, "object", "embedding");
    jw_kuint(w, "index", i);
    jw_key(w, "embedding");
    jw_arr_begin(w);
    for (size_t k = 0; k < dim; k++)
        jw_double(w, v[k]);
    jw_arr_end(w);
    jw_obj_end(w);
}

/* Answer /v1/embeddings; see the header. */
bool sim_embed_request(struct conn *c, const struct http_request *req, json_doc *d,
                       const char *body, size_t len)
{
    static const char *const paths[] = {"/v1/embeddings", "/embeddings"};
    bool ours = false;
    for (size_t i = 0; i < 2; i++)
        ours |= req->path_len == strlen(paths[i]) && !memcmp(req->path, paths[i], req->path_len);
    if (!ours)
        return false;
    if (req->method_len != 4 || memcmp(req->method, "POST", 4) != 0) {
        static const char msg[] = "{\"error\":{\"message\":\"use POST\"}}";
        conn_http_reply(c, 405, "application/json", msg, sizeof(msg) - 1, NULL);
        return true;
    }
    size_t n = 0, tokens = 0;
    int64_t dim = 0;
    const char *err = json_doc_load(d, body, len) < 0 || json_type_at(d, "") != JSON_OBJECT
                          ? "the request body must be a JSON object"
                          : NULL;
    if (!err)
        err = check_options(d, &dim);
    if (!err)
        err = check_input(d, &n);
    if (err) {
        reply_400(c, err);
        return true;
    }
    bool array = json_type_at(d, "/input") == JSON_ARRAY;
    struct buf out = {0};
    struct jsonw w;
    jw_init(&w, &out);
    jw_obj_begin(&w);
    jw_kstr(&w, "object", "list");
    jw_key(&w, "data");
    jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++)
        write_one(&w, d, i, array, (size_t)dim, &tokens);
    jw_arr_end(&w);
    const char *model;
    size_t ml;
    json_get_string(d, "/model", &model, &ml);
    jw_kstrn(&w, "model", model, ml);
    jw_key(&w, "usage");
    jw_obj_begin(&w);
    jw_kuint(&w, "prompt_tokens", tokens);
    jw_kuint(&w, "total_tokens", tokens);
    jw_obj_end(&w);
    jw_obj_end(&w);
    conn_http_reply(c, 200, "application/json", buf_begin(&out), buf_size(&out), NULL);
    buf_free(&out);
    return true;
}
