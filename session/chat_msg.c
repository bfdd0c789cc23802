/* chat_msg.c - typed client messages out of JSON text, with one precise error per bad input. */
#include "session/chat_msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(struct chat_err *e, const char *code, const char *fmt, ...)
{
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* A required string member; max 0 = no limit. */
static int get_str(json_doc *d, const char *ptr, const char *name, size_t max, const char **s,
                   size_t *len, struct chat_err *e)
{
    int r = json_get_string(d, ptr, s, len);
    if (r == -ENOENT)
        return fail(e, "missing_field", "missing field '%s'", name);
    if (r < 0)
        return fail(e, "invalid_field", "field '%s' must be a string", name);
    if (*len == 0)
        return fail(e, "invalid_field", "field '%s' must not be empty", name);
    if (max && *len > max)
        return fail(e, "invalid_field", "field '%s' is longer than %zu bytes", name, max);
    return 0;
}

static int parse_user_message(json_doc *d, uint32_t max_text, struct chat_msg *m,
                              struct chat_err *e)
{
    m->type = CHAT_USER_MESSAGE;
    if (get_str(d, "/id", "id", CHAT_ID_MAX, &m->id, &m->id_len, e) < 0)
        return -1;
    e->id = m->id;
    e->id_len = m->id_len;
    int r = json_get_string(d, "/text", &m->text, &m->text_len);
    if (r == -ENOENT)
        return fail(e, "missing_field", "missing field 'text'");
    if (r < 0)
        return fail(e, "invalid_field", "field 'text' must be a string");
    if (m->text_len == 0)
        return fail(e, "invalid_field", "field 'text' must not be empty");
    if (m->text_len > max_text)
        return fail(e, "text_too_long", "text is %zu bytes; the limit is %u", m->text_len,
                    max_text);
    return 0;
}

static int parse_resume(json_doc *d, struct chat_msg *m, struct chat_err *e)
{
    m->type = CHAT_RESUME;
    if (get_str(d, "/conversation_id", "conversation_id", 64, &m->conversation_id,
                &m->conversation_id_len, e) < 0)
        return -1;
    int r = json_get_int(d, "/after_seq", &m->after_seq);
    if (r == -ENOENT)
        return fail(e, "missing_field", "missing field 'after_seq'");
    if (r < 0 || m->after_seq < 0)
        return fail(e, "invalid_field", "field 'after_seq' must be an integer >= 0");
    return 0;
}

/* Parse one client message; see the header. */
int chat_msg_parse(json_doc *d, const char *text, size_t len, uint32_t max_text_bytes,
                   struct chat_msg *m, struct chat_err *e)
{
    memset(m, 0, sizeof(*m));
    memset(e, 0, sizeof(*e));
    int r = json_doc_load_unique(d, text, len);
    if (r == -E2BIG)
        return fail(e, "invalid_json", "message nested too deeply or too large");
    if (r == -EEXIST)
        return fail(e, "invalid_json", "message has an object with a duplicate key");
    if (r < 0)
        return fail(e, "invalid_json", "message is not valid JSON");
    if (json_type_at(d, "") != JSON_OBJECT)
        return fail(e, "invalid_message", "message must be a JSON object");
    const char *type;
    size_t tlen;
    r = json_get_string(d, "/type", &type, &tlen);
    if (r == -ENOENT)
        return fail(e, "invalid_message", "missing field 'type'");
    if (r < 0)
        return fail(e, "invalid_message", "field 'type' must be a string");
    if (tlen == 12 && memcmp(type, "user_message", 12) == 0)
        return parse_user_message(d, max_text_bytes, m, e);
    if (tlen == 6 && memcmp(type, "cancel", 6) == 0) {
        m->type = CHAT_CANCEL;
        return get_str(d, "/turn_id", "turn_id", 64, &m->turn_id, &m->turn_id_len, e);
    }
    if (tlen == 6 && memcmp(type, "resume", 6) == 0)
        return parse_resume(d, m, e);
    return fail(e, "unknown_type", "unknown message type '%.40s'", type);
}
