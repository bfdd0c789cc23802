/* auth.h - who may open a session: JWT bearer tokens (HS256/384/512 via libjwt) and an Origin
 * allow-list. With no secret configured every session is anonymous (the open local demo). */
#ifndef TRILEMMA_SESSION_AUTH_H
#define TRILEMMA_SESSION_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SUB_MAX 256
#define AUTH_TOKEN_MAX 8192 /* longer tokens are AUTH_MALFORMED */

struct auth_conf {
    const char *secret; /* NULL or "" = open */
    size_t secret_len;
    const char *issuer;   /* NULL or "" = not checked */
    const char *audience; /* NULL or "" = not checked */
    uint32_t leeway_s;    /* clock skew allowed on exp/nbf/iat, default 30 */
    bool require_exp;     /* a token without exp is AUTH_NO_EXP (the default: a token that never
                           * expires is a credential forever once it leaks) */
    uint32_t max_age_s;   /* > 0: iat is required and may be at most this old (AUTH_TOO_OLD) */
};

enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING,   /* a secret is configured but no token was given */
    AUTH_MALFORMED, /* not a JWT */
    AUTH_BAD_SIGNATURE,
    AUTH_BAD_ALG, /* alg not HS256/HS384/HS512 (never "none") */
    AUTH_EXPIRED,
    AUTH_NOT_YET_VALID,
    AUTH_BAD_CLAIMS, /* missing/empty sub, wrong iss/aud */
    AUTH_NO_EXP,     /* no exp while require_exp is set */
    AUTH_TOO_OLD, /* iat older than max_age_s, missing while max_age_s is set, or in the future */
};

/* Verify token[0..len) against conf at time `now` (unix seconds). On AUTH_OK, the `sub` claim is
 * copied into sub (NUL-terminated, at most AUTH_SUB_MAX-1 bytes; longer is AUTH_BAD_CLAIMS).
 * With no secret configured returns AUTH_OK and sets sub to "" (anonymous) whatever the token. */
enum auth_result auth_verify(const struct auth_conf *conf, const char *token, size_t len,
                             int64_t now, char sub[AUTH_SUB_MAX]);

/* auth_verify, and on AUTH_OK *valid_until = the unix second after which the token no longer
 * holds: the earlier of exp and iat + max_age_s, plus the leeway (INT64_MAX when neither
 * bounds it, or with no secret configured). The session is closed then (4001). */
enum auth_result auth_verify_until(const struct auth_conf *conf, const char *token, size_t len,
                                   int64_t now, char sub[AUTH_SUB_MAX], int64_t *valid_until);

/* A short message for an auth result, e.g. "token expired". */
const char *auth_result_str(enum auth_result r);

/* True when the list is empty, or origin[0..len) equals one entry (ASCII case-insensitive,
 * exact scheme://host[:port]). A missing Origin (len 0, non-browser client) is allowed only
 * when the list is empty. */
bool auth_origin_allowed(const char (*origins)[256], int n, const char *origin, size_t len);

#endif
