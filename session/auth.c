/* auth.c - JWT bearer tokens (HS256/384/512) with libjwt 1.10, and the Origin allow-list.
 *
 * libjwt 1.10 answers every failure of jwt_decode() with EINVAL, so it cannot tell a malformed
 * token from a forged one. We therefore decode twice:
 *   1. our own structural check: exactly three dot-separated base64url parts;
 *   2. jwt_decode() without a key: parses header and payload (base64 + JSON) but verifies
 *      nothing; failure here is AUTH_MALFORMED. We read the header's "alg" and accept only
 *      HS256/HS384/HS512: anything else (none, RS256, ...) is AUTH_BAD_ALG before the key is
 *      ever used, which closes the "alg: none" and RS256-with-HMAC-key confusions by
 *      construction rather than by trusting libjwt's behaviour;
 *   3. jwt_decode() with the key: failure now can only be the signature (AUTH_BAD_SIGNATURE),
 *      and jwt_get_alg() on the verified token must again be an HS alg.
 * (Measured on libjwt 1.10.2: alg "none" with a key gives EINVAL, RS256 with an HMAC key gives
 * EINVAL; tests/session/test_auth.c pins both so a library update cannot loosen them unseen.)
 *
 * Known weakness: an unrecognised alg string ("XX1") fails libjwt's header parse in step 2 and
 * is reported as AUTH_MALFORMED, not AUTH_BAD_ALG. Either way it is rejected.
 *
 * Claims: exp/nbf/iat are NumericDates (integer or fractional); a present but non-numeric one is
 * AUTH_BAD_CLAIMS. `sub` must be a non-empty string shorter than AUTH_SUB_MAX. `iss` and `aud`
 * are checked only when configured; `aud` may be a string or an array of strings. */
#include "session/auth.h"

#include <jwt.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool b64url_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

/* Exactly header.payload.signature, base64url without padding; the signature may be empty
 * (it then fails verification, unless alg is none, which is refused anyway). */
static bool jws_shape_ok(const char *t, size_t len)
{
    size_t dots[2], ndots = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.') {
            if (ndots == 2)
                return false;
            dots[ndots++] = i;
        } else if (!b64url_char(t[i])) {
            return false;
        }
    }
    return ndots == 2 && dots[0] > 0 && dots[1] > dots[0] + 1;
}

static bool hs_alg_name(const char *alg)
{
    return alg &&
           (strcmp(alg, "HS256") == 0 || strcmp(alg, "HS384") == 0 || strcmp(alg, "HS512") == 0);
}

static bool hs_alg(jwt_alg_t alg)
{
    return alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384 || alg == JWT_ALG_HS512;
}

/* Steps 2 and 3 above: returns AUTH_OK with *out set to the verified token. */
static enum auth_result decode_verified(const char *token, const struct auth_conf *conf,
                                        size_t keylen, jwt_t **out)
{
    jwt_t *j = NULL;
    if (jwt_decode(&j, token, NULL, 0) != 0 || !j)
        return AUTH_MALFORMED;
    char *crit = jwt_get_headers_json(j, "crit");
    bool alg_ok = hs_alg_name(jwt_get_header(j, "alg"));
    jwt_free(j);
    if (crit) {
        free(crit);
        return AUTH_MALFORMED; /* RFC 7515 4.1.11: we understand no extensions */
    }
    if (!alg_ok)
        return AUTH_BAD_ALG;

    j = NULL;
    if (jwt_decode(&j, token, (const unsigned char *)conf->secret, (int)keylen) != 0 || !j)
        return AUTH_BAD_SIGNATURE;
    if (!hs_alg(jwt_get_alg(j))) {
        jwt_free(j);
        return AUTH_BAD_ALG;
    }
    *out = j;
    return AUTH_OK;
}

/* A NumericDate claim: 0 absent, 1 present (in *out), -1 present but not a number. */
static int numeric_claim(jwt_t *j, const char *name, double *out)
{
    char *s = jwt_get_grants_json(j, name);
    if (!s)
        return 0;
    char *end;
    int ret = -1;
    if ((s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) {
        *out = strtod(s, &end);
        if (*end == '\0')
            ret = 1;
    }
    free(s);
    return ret;
}

static unsigned hex4(const char *p, bool *ok)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else {
            *ok = false; /* stop here: the string may end at this byte */
            return 0;
        }
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decode the JSON string literal at *p (as jansson printed it) into out[0..cap), advancing *p
 * past it. Returns the decoded length, or -1 if it is not a string literal; a string longer
 * than cap decodes to cap + 1 (so it compares unequal to anything that fits). */
static long json_string(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    size_t n = 0;
    bool ok = true;
    if (*s++ != '"')
        return -1;
    while (*s != '"') {
        char tmp[4];
        size_t k = 1;
        if (*s == '\0')
            return -1;
        if (*s != '\\') {
            tmp[0] = *s++;
        } else {
            const char *esc = "\"\"\\\\//b\bf\fn\nr\rt\t";
            const char *e = s[1] ? strchr(esc, s[1]) : NULL;
            if (s[1] == 'u') {
                unsigned cp = hex4(s + 2, &ok);
                s += 6;
                if (!ok)
                    return -1;
                if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u') {
                    unsigned lo = hex4(s + 2, &ok);
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        s += 6;
                    }
                }
                if (!ok)
                    return -1;
                k = put_utf8(tmp, cp);
            } else if (e && (e - esc) % 2 == 0) {
                tmp[0] = e[1];
                s += 2;
            } else {
                return -1;
            }
        }
        for (size_t i = 0; i < k; i++, n++)
            if (n < cap)
                out[n] = tmp[i];
    }
    *p = s + 1;
    return (long)(n > cap ? cap + 1 : n);
}

/* aud: a string equal to want, or an array of strings one of which is. */
static bool audience_ok(jwt_t *j, const char *want)
{
    const char *s = jwt_get_grant(j, "aud");
    if (s)
        return strcmp(s, want) == 0;
    char *json = jwt_get_grants_json(j, "aud");
    if (!json)
        return false;
    bool found = false, ok = json[0] == '[';
    size_t wlen = strlen(want);
    const char *p = json + 1;
    while (ok && *p != ']') {
        char item[512];
        long n = json_string(&p, item, sizeof(item));
        if (n < 0) {
            ok = false;
            break;
        }
        if ((size_t)n == wlen && memcmp(item, want, wlen) == 0)
            found = true;
        if (*p == ',' && p[1] != ']')
            p++;
        else if (*p != ']')
            ok = false;
    }
    ok = ok && p[0] == ']' && p[1] == '\0';
    free(json);
    return ok && found;
}

/* exp, nbf and iat against now (with the leeway) and the configured requirements; on success
 * *until is when the token stops holding (see auth_verify_until). */
static enum auth_result check_times(jwt_t *j, const struct auth_conf *conf, int64_t now,
                                    int64_t *until)
{
    double exp, nbf, iat;
    double leeway = (double)conf->leeway_s;
    int has_exp = numeric_claim(j, "exp", &exp);
    int has_nbf = numeric_claim(j, "nbf", &nbf);
    int has_iat = numeric_claim(j, "iat", &iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return AUTH_BAD_CLAIMS;
    if (has_exp && !(exp > (double)now - leeway))
        return AUTH_EXPIRED;
    if (has_nbf && !(nbf <= (double)now + leeway))
        return AUTH_NOT_YET_VALID;
    if (!has_exp && conf->require_exp)
        return AUTH_NO_EXP;
    double end = has_exp ? exp : 9e18;
    if (conf->max_age_s) {
        /* issued in the future (beyond the skew) is as suspect as issued too long ago */
        if (!has_iat || !(iat <= (double)now + leeway) ||
            !(iat + (double)conf->max_age_s > (double)now - leeway))
            return AUTH_TOO_OLD;
        if (iat + (double)conf->max_age_s < end)
            end = iat + (double)conf->max_age_s;
    }
    *until = end + leeway >= 9e18 ? INT64_MAX : (int64_t)(end + leeway);
    return AUTH_OK;
}

static enum auth_result check_claims(jwt_t *j, const struct auth_conf *conf, int64_t now,
                                     char sub[AUTH_SUB_MAX], int64_t *until)
{
    enum auth_result r = check_times(j, conf, now, until);
    if (r != AUTH_OK)
        return r;
    const char *s = jwt_get_grant(j, "sub");
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= AUTH_SUB_MAX)
        return AUTH_BAD_CLAIMS;
    if (conf->issuer && conf->issuer[0]) {
        const char *iss = jwt_get_grant(j, "iss");
        if (!iss || strcmp(iss, conf->issuer) != 0)
            return AUTH_BAD_CLAIMS;
    }
    if (conf->audience && conf->audience[0] && !audience_ok(j, conf->audience))
        return AUTH_BAD_CLAIMS;
    memcpy(sub, s, n + 1);
    return AUTH_OK;
}

/* See auth.h. The token is copied into a NUL-terminated stack buffer because libjwt wants a C
 * string and the caller's bytes usually sit inside a request buffer. */
enum auth_result auth_verify_until(const struct auth_conf *conf, const char *token, size_t len,
                                   int64_t now, char sub[AUTH_SUB_MAX], int64_t *valid_until)
{
    char buf[AUTH_TOKEN_MAX + 1];
    jwt_t *j = NULL;
    size_t keylen;

    sub[0] = '\0';
    *valid_until = INT64_MAX;
    if (!conf->secret || (conf->secret_len == 0 && conf->secret[0] == '\0'))
        return AUTH_OK;
    /* a non-empty secret with secret_len 0 is a caller slip: never let it mean "open" */
    keylen = conf->secret_len ? conf->secret_len : strlen(conf->secret);
    if (keylen > INT_MAX)
        return AUTH_BAD_SIGNATURE;
    if (!token || len == 0)
        return AUTH_MISSING;
    if (len > AUTH_TOKEN_MAX || !jws_shape_ok(token, len))
        return AUTH_MALFORMED;
    memcpy(buf, token, len);
    buf[len] = '\0';

    enum auth_result r = decode_verified(buf, conf, keylen, &j);
    if (r != AUTH_OK)
        return r;
    char *all = jwt_get_grants_json(j, NULL);
    if (!all || all[0] != '{')
        r = AUTH_MALFORMED; /* the payload must be a JSON object */
    else
        r = check_claims(j, conf, now, sub, valid_until);
    free(all);
    jwt_free(j);
    return r;
}

/* See auth.h. */
enum auth_result auth_verify(const struct auth_conf *conf, const char *token, size_t len,
                             int64_t now, char sub[AUTH_SUB_MAX])
{
    int64_t until;
    return auth_verify_until(conf, token, len, now, sub, &until);
}

/* See auth.h. */
const char *auth_result_str(enum auth_result r)
{
    switch (r) {
    case AUTH_OK:
        return "ok";
    case AUTH_MISSING:
        return "token missing";
    case AUTH_MALFORMED:
        return "token malformed";
    case AUTH_BAD_SIGNATURE:
        return "bad token signature";
    case AUTH_BAD_ALG:
        return "token algorithm not allowed";
    case AUTH_EXPIRED:
        return "token expired";
    case AUTH_NOT_YET_VALID:
        return "token not yet valid";
    case AUTH_BAD_CLAIMS:
        return "token claims rejected";
    case AUTH_NO_EXP:
        return "token has no exp";
    case AUTH_TOO_OLD:
        return "token too old (iat)";
    }
    return "unknown auth result";
}

static char ascii_lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* See auth.h. */
bool auth_origin_allowed(const char (*origins)[256], int n, const char *origin, size_t len)
{
    if (n <= 0)
        return true;
    if (!origin || len == 0)
        return false;
    for (int i = 0; i < n; i++) {
        const char *o = origins[i];
        if (strnlen(o, 256) != len)
            continue;
        size_t k = 0;
        while (k < len && ascii_lower(o[k]) == ascii_lower(origin[k]))
            k++;
        if (k == len)
            return true;
    }
    return false;
}
