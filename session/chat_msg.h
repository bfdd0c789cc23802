/* chat_msg.h - parsing and checking of client -> server chat messages (docs/protocol.md).
 *
 * One function turns a text frame into a typed message or a protocol error (code + message)
 * that the session sends back as an `error` event. Strings point into the json_doc and stay
 * valid until its next load. */
#ifndef TRILEMMA_SESSION_CHAT_MSG_H
#define TRILEMMA_SESSION_CHAT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "stream/json.h"

enum chat_msg_type {
    CHAT_USER_MESSAGE = 1,
    CHAT_CANCEL,
    CHAT_RESUME,
};

#define CHAT_ID_MAX 128

struct chat_msg {
    enum chat_msg_type type;
    const char *id; /* user_message: client id (1..CHAT_ID_MAX bytes) */
    size_t id_len;
    const char *text; /* user_message */
    size_t text_len;
    const char *turn_id; /* cancel */
    size_t turn_id_len;
    const char *conversation_id; /* resume */
    size_t conversation_id_len;
    int64_t after_seq; /* resume, >= 0 */
};

struct chat_err {
    const char *code; /* "invalid_json", "missing_field", ... */
    char message[160];
    const char *id; /* the client id, when it could be read (for the error event) */
    size_t id_len;
};

/* Parse text[0..len) with d. Returns 0 and fills m, or -1 and fills e. */
int chat_msg_parse(json_doc *d, const char *text, size_t len, uint32_t max_text_bytes,
                   struct chat_msg *m, struct chat_err *e);

#endif
