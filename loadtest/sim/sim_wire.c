/* sim_wire.c - what the three wire formats share: dispatch, error bodies in each provider's
 * shape, content types and finish-reason names. The formats themselves are in
 * sim_wire_openai.c, sim_wire_anthropic.c and sim_wire_gemini.c. */
#include "loadtest/sim/sim_wire.h"

#include "stream/jsonw.h"

/* The ops of format fmt. */
const struct sim_wire_ops *sim_wire_ops(enum sim_format fmt)
{
    switch (fmt) {
    case SIM_ANTHROPIC:
        return &sim_wire_anthropic;
    case SIM_GEMINI:
        return &sim_wire_gemini;
    default:
        return &sim_wire_openai;
    }
}

/* Content-Type of a streamed response in fmt (as each provider sends it). */
const char *sim_wire_stream_type(enum sim_format fmt)
{
    return fmt == SIM_GEMINI ? "text/event-stream" : "text/event-stream; charset=utf-8";
}

/* Finish reasons as each format spells them. */
const char *sim_wire_finish_name(enum sim_format fmt, enum sim_finish f)
{
    static const char *const names[SIM_NFORMATS][3] = {
        [SIM_OPENAI] = {"stop", "length", "tool_calls"},
        [SIM_ANTHROPIC] = {"end_turn", "max_tokens", "tool_use"},
        [SIM_GEMINI] = {"STOP", "MAX_TOKENS", "STOP"},
    };
    return names[fmt][f];
}

static const char *openai_type(int status)
{
    if (status == 429)
        return "requests";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

static const char *anthropic_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static const char *gemini_status(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 409:
        return "ABORTED";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 499:
        return "CANCELLED";
    case 500:
        return "INTERNAL";
    case 501:
        return "NOT_IMPLEMENTED";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
    }
}

/* An error body in fmt's shape:
 *   OpenAI    {"error":{"message","type","param":null,"code"}}
 *   Anthropic {"type":"error","error":{"type","message"}}
 *   Gemini    {"error":{"code","message","status"}} */
void sim_wire_error_body(enum sim_format fmt, int status, const char *message, struct buf *out)
{
    struct jsonw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    if (fmt == SIM_ANTHROPIC) {
        jw_kstr(&w, "type", "error");
        jw_key(&w, "error");
        jw_obj_begin(&w);
        jw_kstr(&w, "type", anthropic_type(status));
        jw_kstr(&w, "message", message);
        jw_obj_end(&w);
    } else {
        jw_key(&w, "error");
        jw_obj_begin(&w);
        if (fmt == SIM_GEMINI) {
            jw_kint(&w, "code", status);
            jw_kstr(&w, "message", message);
            jw_kstr(&w, "status", gemini_status(status));
        } else {
            jw_kstr(&w, "message", message);
            jw_kstr(&w, "type", openai_type(status));
            jw_key(&w, "param");
            jw_null(&w);
            jw_key(&w, "code");
            if (status == 429)
                jw_str(&w, "rate_limit_exceeded");
            else
                jw_null(&w);
        }
        jw_obj_end(&w);
    }
    jw_obj_end(&w);
}
