/* test_auth.c - JWT verification and the Origin allow-list: tokens made with libjwt's encoder,
 * and forged ones built by hand (alg none, RS256 signed with the HMAC secret, tampering). */
#include "session/auth.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/tap.h"

static const char SECRET[] = "0123456789abcdef0123456789abcdef";
static const int64_t NOW = 1700000000;

static struct auth_conf conf(void)
{
    struct auth_conf c = {SECRET, sizeof(SECRET) - 1, NULL, NULL, 30};
    return c;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, k = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[k++] = t[v >> 18];
        out[k++] = t[(v >> 12) & 63];
        out[k++] = t[(v >> 6) & 63];
        out[k++] = t[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[k++] = t[v >> 18];
        out[k++] = t[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[k++] = t[v >> 18];
        out[k++] = t[(v >> 12) & 63];
        out[k++] = t[(v >> 6) & 63];
    }
    out[k] = '\0';
}

/* header.payload.signature by hand: sign with HMAC(md, key) whatever the header says, or leave
 * the signature empty when md is NULL. */
static char tok[4096];
static const char *forge(const char *header, const char *payload, const EVP_MD *md, const char *key)
{
    char h[1024], p[2048];
    b64url((const unsigned char *)header, strlen(header), h);
    b64url((const unsigned char *)payload, strlen(payload), p);
    snprintf(tok, sizeof(tok), "%s.%s.", h, p);
    if (md) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        HMAC(md, key, (int)strlen(key), (const unsigned char *)tok, strlen(tok) - 1, mac, &maclen);
        b64url(mac, maclen, tok + strlen(tok));
    }
    return tok;
}

static enum auth_result verify_c(const struct auth_conf *c, const char *t, char *sub)
{
    return auth_verify(c, t, strlen(t), NOW, sub);
}

static enum auth_result verify(const char *t)
{
    struct auth_conf c = conf();
    char sub[AUTH_SUB_MAX];
    return verify_c(&c, t, sub);
}

/* A token from libjwt's encoder, with extra grants as JSON. Caller frees. */
static char *encode(jwt_alg_t alg, const char *key, const char *grants_json)
{
    jwt_t *j = NULL;
    if (jwt_new(&j) != 0)
        return NULL;
    if (grants_json && jwt_add_grants_json(j, grants_json) != 0)
        goto fail;
    if (jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)) != 0)
        goto fail;
    char *s = jwt_encode_str(j);
    jwt_free(j);
    return s;
fail:
    jwt_free(j);
    return NULL;
}

static void test_open_and_missing(void)
{
    struct auth_conf open = {NULL, 0, NULL, NULL, 30};
    char sub[AUTH_SUB_MAX] = "junk";
    CHECK(auth_verify(&open, "garbage", 7, NOW, sub) == AUTH_OK && sub[0] == '\0');
    open.secret = "";
    strcpy(sub, "junk");
    CHECK(auth_verify(&open, NULL, 0, NOW, sub) == AUTH_OK && sub[0] == '\0');

    struct auth_conf c = conf();
    CHECK(auth_verify(&c, "", 0, NOW, sub) == AUTH_MISSING);
    CHECK(auth_verify(&c, NULL, 0, NOW, sub) == AUTH_MISSING);

    /* a secret with secret_len 0 is a caller slip, not "open" */
    struct auth_conf slip = {SECRET, 0, NULL, NULL, 30};
    char *t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"alice\"}");
    CHECK(verify_c(&slip, t, sub) == AUTH_OK && strcmp(sub, "alice") == 0);
    CHECK(verify_c(&slip, "garbage", sub) == AUTH_MALFORMED);
    free(t);
}

static void test_good_tokens(void)
{
    jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
    for (int i = 0; i < 3; i++) {
        char *t = encode(algs[i], SECRET, "{\"sub\":\"alice\",\"exp\":1700000100}");
        char sub[AUTH_SUB_MAX] = "";
        struct auth_conf c = conf();
        CHECKF(t && verify_c(&c, t, sub) == AUTH_OK, "alg %d", (int)algs[i]);
        CHECK(strcmp(sub, "alice") == 0);
        free(t);
    }
    /* hand-built HS256 passes too: proves forge() builds real tokens, so the forged
     * rejections below are rejections of the header, not of a broken builder */
    CHECK(verify(forge("{\"alg\":\"HS256\"}", "{\"sub\":\"bob\"}", EVP_sha256(), SECRET)) ==
          AUTH_OK);
    CHECK(verify(forge("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{\"sub\":\"bob\"}", EVP_sha512(),
                       SECRET)) == AUTH_OK);
}

static void test_signature(void)
{
    char *t = encode(JWT_ALG_HS256, "another-secret-another-secret-xx", "{\"sub\":\"alice\"}");
    CHECK(verify(t) == AUTH_BAD_SIGNATURE);
    free(t);

    t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"alice\"}");
    char buf[2048];
    /* tampered signature: change one character in the middle */
    strcpy(buf, t);
    char *sig = strrchr(buf, '.') + 1;
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    CHECK(verify(buf) == AUTH_BAD_SIGNATURE);
    /* signature cut off */
    strcpy(buf, t);
    strrchr(buf, '.')[1] = '\0';
    CHECK(verify(buf) == AUTH_BAD_SIGNATURE);
    /* tampered payload: alice -> admin, signature kept */
    char p[256];
    b64url((const unsigned char *)"{\"sub\":\"admin\"}", 15, p);
    strcpy(buf, t);
    char *dot1 = strchr(buf, '.'), *dot2 = strrchr(t, '.');
    sprintf(dot1 + 1, "%s%s", p, dot2);
    CHECK(verify(buf) == AUTH_BAD_SIGNATURE);
    free(t);
}

static void test_forged_alg(void)
{
    const char *payload = "{\"sub\":\"mallory\"}";
    /* alg none, with and without a signature */
    CHECK(verify(forge("{\"alg\":\"none\"}", payload, NULL, NULL)) == AUTH_BAD_ALG);
    CHECK(verify(forge("{\"alg\":\"none\"}", payload, EVP_sha256(), SECRET)) == AUTH_BAD_ALG);
    enum auth_result r = verify(forge("{\"alg\":\"NONE\"}", payload, NULL, NULL));
    CHECK(r == AUTH_BAD_ALG || r == AUTH_MALFORMED);
    r = verify(forge("{\"alg\":\"None\"}", payload, EVP_sha256(), SECRET));
    CHECK(r == AUTH_BAD_ALG || r == AUTH_MALFORMED);
    /* RS256 / ES256 headers signed with HMAC over our secret: the key-confusion attack */
    CHECK(verify(forge("{\"alg\":\"RS256\"}", payload, EVP_sha256(), SECRET)) == AUTH_BAD_ALG);
    CHECK(verify(forge("{\"alg\":\"ES256\"}", payload, EVP_sha256(), SECRET)) == AUTH_BAD_ALG);
    /* no alg, alg of the wrong type, unknown alg */
    CHECK(verify(forge("{\"typ\":\"JWT\"}", payload, EVP_sha256(), SECRET)) == AUTH_MALFORMED);
    CHECK(verify(forge("{\"alg\":256}", payload, EVP_sha256(), SECRET)) == AUTH_MALFORMED);
    r = verify(forge("{\"alg\":\"HS257\"}", payload, EVP_sha256(), SECRET));
    CHECK(r == AUTH_BAD_ALG || r == AUTH_MALFORMED);
    /* header says HS512, signed HS256 */
    CHECK(verify(forge("{\"alg\":\"HS512\"}", payload, EVP_sha256(), SECRET)) ==
          AUTH_BAD_SIGNATURE);
    /* critical extensions we do not understand */
    CHECK(verify(forge("{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}", payload, EVP_sha256(),
                       SECRET)) == AUTH_MALFORMED);
}

/* What libjwt 1.10 itself does with a key: pinned so an update that loosens it is noticed. */
static void test_libjwt_pins(void)
{
    jwt_t *j = NULL;
    const char *t = forge("{\"alg\":\"none\"}", "{\"sub\":\"m\"}", NULL, NULL);
    CHECK(jwt_decode(&j, t, (const unsigned char *)SECRET, (int)strlen(SECRET)) != 0);
    jwt_free(j);
    j = NULL;
    t = forge("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"sub\":\"m\"}", EVP_sha256(), SECRET);
    CHECK(jwt_decode(&j, t, (const unsigned char *)SECRET, (int)strlen(SECRET)) != 0);
    jwt_free(j);
}

static void test_time(void)
{
    char g[256];
    struct {
        const char *claim;
        int64_t delta;
        enum auth_result want;
    } cases[] = {
        {"exp", -100, AUTH_EXPIRED},     {"exp", -31, AUTH_EXPIRED},
        {"exp", -30, AUTH_EXPIRED},      {"exp", -29, AUTH_OK},
        {"exp", 3600, AUTH_OK},          {"nbf", 100, AUTH_NOT_YET_VALID},
        {"nbf", 31, AUTH_NOT_YET_VALID}, {"nbf", 30, AUTH_OK},
        {"nbf", -3600, AUTH_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(g, sizeof(g), "{\"sub\":\"a\",\"%s\":%lld}", cases[i].claim,
                 (long long)(NOW + cases[i].delta));
        char *t = encode(JWT_ALG_HS256, SECRET, g);
        CHECKF(verify(t) == cases[i].want, "%s %+lld", cases[i].claim, (long long)cases[i].delta);
        free(t);
    }
    /* fractional NumericDate, and a claim of the wrong type */
    const char *more[][2] = {
        {"{\"sub\":\"a\",\"exp\":1699999969.5}", "expired"},
        {"{\"sub\":\"a\",\"exp\":1700003600.5}", "ok"},
        {"{\"sub\":\"a\",\"exp\":\"1800000000\"}", "claims"},
        {"{\"sub\":\"a\",\"nbf\":true}", "claims"},
        {"{\"sub\":\"a\",\"exp\":null}", "claims"},
    };
    enum auth_result want[] = {AUTH_EXPIRED, AUTH_OK, AUTH_BAD_CLAIMS, AUTH_BAD_CLAIMS,
                               AUTH_BAD_CLAIMS};
    for (size_t i = 0; i < 5; i++) {
        char *t = encode(JWT_ALG_HS256, SECRET, more[i][0]);
        CHECKF(verify(t) == want[i], "%s: want %s", more[i][0], more[i][1]);
        free(t);
    }
    /* leeway 0 */
    struct auth_conf c = conf();
    c.leeway_s = 0;
    char sub[AUTH_SUB_MAX];
    char *t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"a\",\"exp\":1700000001}");
    CHECK(verify_c(&c, t, sub) == AUTH_OK);
    free(t);
    t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"a\",\"exp\":1700000000}");
    CHECK(verify_c(&c, t, sub) == AUTH_EXPIRED);
    free(t);
}

/* jwt_require_exp, jwt_max_age_s (iat) and when the token stops holding (the session's 4001). */
static void test_exp_required_and_max_age(void)
{
    struct auth_conf c = conf();
    char sub[AUTH_SUB_MAX];
    int64_t until = 0;
    c.require_exp = true;
    char *t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"a\"}");
    CHECK(verify_c(&c, t, sub) == AUTH_NO_EXP);
    c.require_exp = false;
    CHECK(auth_verify_until(&c, t, strlen(t), NOW, sub, &until) == AUTH_OK && until == INT64_MAX);
    free(t);
    t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"a\",\"exp\":1700000100}");
    CHECK(auth_verify_until(&c, t, strlen(t), NOW, sub, &until) == AUTH_OK);
    CHECKF(until == 1700000100 + 30, "until %lld", (long long)until); /* exp + leeway */
    c.max_age_s = 600;                                                /* now iat is required */
    CHECK(verify_c(&c, t, sub) == AUTH_TOO_OLD);
    free(t);
    const char *ages[][2] = {
        {"{\"sub\":\"a\",\"iat\":1699999500}", "ok"},      /* 500 s old */
        {"{\"sub\":\"a\",\"iat\":1699999000}", "too old"}, /* 1000 s old */
        {"{\"sub\":\"a\",\"iat\":1700001000}", "future"},  /* beyond the leeway */
        {"{\"sub\":\"a\",\"iat\":\"1700000000\"}", "claims"},
    };
    enum auth_result want[] = {AUTH_OK, AUTH_TOO_OLD, AUTH_TOO_OLD, AUTH_BAD_CLAIMS};
    for (size_t i = 0; i < 4; i++) {
        t = encode(JWT_ALG_HS256, SECRET, ages[i][0]);
        CHECKF(auth_verify_until(&c, t, strlen(t), NOW, sub, &until) == want[i], "%s: want %s",
               ages[i][0], ages[i][1]);
        if (want[i] == AUTH_OK)
            CHECKF(until == 1699999500 + 600 + 30, "until %lld", (long long)until);
        free(t);
    }
    /* the earlier of exp and iat + max_age */
    t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"a\",\"iat\":1699999500,\"exp\":1700000010}");
    CHECK(auth_verify_until(&c, t, strlen(t), NOW, sub, &until) == AUTH_OK &&
          until == 1700000010 + 30);
    free(t);
}

static void test_sub(void)
{
    const char *bad[] = {"{}",
                         "{\"sub\":\"\"}",
                         "{\"sub\":42}",
                         "{\"sub\":null}",
                         "{\"sub\":[\"a\"]}",
                         "{\"sub\":{\"a\":1}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = encode(JWT_ALG_HS256, SECRET, bad[i]);
        CHECKF(verify(t) == AUTH_BAD_CLAIMS, "%s", bad[i]);
        free(t);
    }
    char g[600], longsub[300];
    memset(longsub, 'x', sizeof(longsub));
    longsub[AUTH_SUB_MAX - 1] = '\0'; /* 255 bytes: fits */
    snprintf(g, sizeof(g), "{\"sub\":\"%s\"}", longsub);
    char *t = encode(JWT_ALG_HS256, SECRET, g);
    char sub[AUTH_SUB_MAX];
    struct auth_conf c = conf();
    CHECK(verify_c(&c, t, sub) == AUTH_OK && strlen(sub) == AUTH_SUB_MAX - 1);
    free(t);
    longsub[AUTH_SUB_MAX - 1] = 'x';
    longsub[AUTH_SUB_MAX] = '\0'; /* 256 bytes: too long */
    snprintf(g, sizeof(g), "{\"sub\":\"%s\"}", longsub);
    t = encode(JWT_ALG_HS256, SECRET, g);
    CHECK(verify_c(&c, t, sub) == AUTH_BAD_CLAIMS);
    free(t);
    /* a payload that is not an object, properly signed */
    CHECK(verify(forge("{\"alg\":\"HS256\"}", "[\"sub\"]", EVP_sha256(), SECRET)) ==
          AUTH_MALFORMED);
    CHECK(verify(forge("{\"alg\":\"HS256\"}", "\"alice\"", EVP_sha256(), SECRET)) ==
          AUTH_MALFORMED);
}

static void check_claims(const char *iss, const char *aud, const char *grants,
                         enum auth_result want)
{
    struct auth_conf c = conf();
    c.issuer = iss;
    c.audience = aud;
    char *t = encode(JWT_ALG_HS256, SECRET, grants);
    char sub[AUTH_SUB_MAX];
    CHECKF(t && verify_c(&c, t, sub) == want, "iss=%s aud=%s %s: want %s", iss ? iss : "-",
           aud ? aud : "-", grants, auth_result_str(want));
    free(t);
}

static void test_iss_aud(void)
{
    check_claims("https://idp", NULL, "{\"sub\":\"a\",\"iss\":\"https://idp\"}", AUTH_OK);
    check_claims("https://idp", NULL, "{\"sub\":\"a\",\"iss\":\"https://evil\"}", AUTH_BAD_CLAIMS);
    check_claims("https://idp", NULL, "{\"sub\":\"a\"}", AUTH_BAD_CLAIMS);
    check_claims("https://idp", NULL, "{\"sub\":\"a\",\"iss\":[\"https://idp\"]}", AUTH_BAD_CLAIMS);
    check_claims("", "", "{\"sub\":\"a\",\"iss\":\"x\",\"aud\":\"y\"}", AUTH_OK);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":\"chat\"}", AUTH_OK);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":\"chatx\"}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":\"Chat\"}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\"}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":[\"other\",\"chat\"]}", AUTH_OK);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":[\"chat\"]}", AUTH_OK);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":[\"other\",\"chatx\"]}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":[]}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":[\"chat\",1]}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":[[\"chat\"]]}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":{\"chat\":1}}", AUTH_BAD_CLAIMS);
    check_claims(NULL, "chat", "{\"sub\":\"a\",\"aud\":42}", AUTH_BAD_CLAIMS);
    /* escapes inside array elements are decoded before comparing */
    check_claims(NULL, "a\"b\\c/d", "{\"sub\":\"a\",\"aud\":[\"x\",\"a\\\"b\\\\c\\/d\"]}", AUTH_OK);
    check_claims(NULL, "caf\xc3\xa9", "{\"sub\":\"a\",\"aud\":[\"x\",\"caf\\u00e9\"]}", AUTH_OK);
    check_claims(NULL, "\xf0\x9f\x98\x80", "{\"sub\":\"a\",\"aud\":[\"\\ud83d\\ude00\"]}", AUTH_OK);
    /* jansson prints control characters as \uXXXX and \n, \t as short escapes */
    check_claims(NULL,
                 "a\x01"
                 "b",
                 "{\"sub\":\"a\",\"aud\":[\"a\\u0001b\"]}", AUTH_OK);
    check_claims(NULL, "a\nb\tc", "{\"sub\":\"a\",\"aud\":[\"z\",\"a\\nb\\tc\"]}", AUTH_OK);
    check_claims(NULL, "caf", "{\"sub\":\"a\",\"aud\":[\"caf\\u00e9\"]}", AUTH_BAD_CLAIMS);
    check_claims("https://idp", "chat",
                 "{\"sub\":\"a\",\"iss\":\"https://idp\",\"aud\":[\"chat\"],\"exp\":1700000100}",
                 AUTH_OK);
}

static void test_malformed(void)
{
    const char *bad[] = {
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        ".b.c",
        "a..c",
        "a.b.c=",
        "a!b.c.d",
        "a b.c.d",
        "eyJhbGciOiJIUzI1NiJ9.e30.%%%",
        "eyJhbGciOiJIUzI1NiJ9.!!.abc",           /* bad base64 */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJh.abc", /* payload JSON cut short */
        "e30.e30.abc",                           /* header {} */
        "Zm9v.e30.abc",                          /* header "foo" */
        "eyJhbGciOiJIUzI1NiJ9.a.abc",            /* one base64 char */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECKF(verify(bad[i]) == AUTH_MALFORMED, "%s", bad[i]);

    /* header JSON broken, properly signed */
    CHECK(verify(forge("{\"alg\":\"HS256\"", "{\"sub\":\"a\"}", EVP_sha256(), SECRET)) ==
          AUTH_MALFORMED);

    /* a NUL inside the given length */
    char *t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"alice\"}");
    char buf[2048];
    size_t n = strlen(t);
    memcpy(buf, t, n + 1);
    buf[n] = 'A';
    buf[n + 1] = '\0';
    buf[10] = '\0';
    struct auth_conf c = conf();
    char sub[AUTH_SUB_MAX];
    CHECK(auth_verify(&c, buf, n + 1, NOW, sub) == AUTH_MALFORMED);
    /* a prefix of a good token */
    CHECK(auth_verify(&c, t, n - 1, NOW, sub) == AUTH_BAD_SIGNATURE);
    CHECK(auth_verify(&c, t, strchr(t, '.') - t + 1, NOW, sub) == AUTH_MALFORMED);
    free(t);

    /* over the size limit */
    char *big = malloc(AUTH_TOKEN_MAX + 2);
    memset(big, 'A', AUTH_TOKEN_MAX + 1);
    big[10] = '.';
    big[20] = '.';
    CHECK(auth_verify(&c, big, AUTH_TOKEN_MAX + 1, NOW, sub) == AUTH_MALFORMED);
    CHECK(auth_verify(&c, big, AUTH_TOKEN_MAX, NOW, sub) == AUTH_MALFORMED);
    free(big);
}

/* The token is not NUL terminated and ends right before an unmapped page: auth_verify must
 * read exactly len bytes. */
static void test_guard_page(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    if (m == MAP_FAILED)
        return;
    CHECK(mprotect(m + pg, (size_t)pg, PROT_NONE) == 0);
    char *t = encode(JWT_ALG_HS256, SECRET, "{\"sub\":\"alice\"}");
    size_t n = strlen(t);
    char *at = m + pg - n;
    memcpy(at, t, n);
    struct auth_conf c = conf();
    char sub[AUTH_SUB_MAX];
    CHECK(auth_verify(&c, at, n, NOW, sub) == AUTH_OK && strcmp(sub, "alice") == 0);
    memcpy(m + pg - 3, "a.b", 3);
    CHECK(auth_verify(&c, m + pg - 3, 3, NOW, sub) == AUTH_MALFORMED);
    free(t);
    munmap(m, (size_t)pg * 2);
}

static void test_result_str(void)
{
    for (int r = AUTH_OK; r <= AUTH_TOO_OLD; r++) {
        const char *s = auth_result_str((enum auth_result)r);
        CHECK(s && *s && strcmp(s, "unknown auth result") != 0);
    }
    CHECK(strcmp(auth_result_str(AUTH_EXPIRED), "token expired") == 0);
}

static void test_origin(void)
{
    char list[3][256] = {"https://chat.example.com", "http://localhost:8080", "null"};
    const char(*o)[256] = (const char(*)[256])list;

    CHECK(auth_origin_allowed(o, 0, "https://evil.example", 20));
    CHECK(auth_origin_allowed(o, 0, "", 0));
    CHECK(auth_origin_allowed(o, 0, NULL, 0));
    CHECK(!auth_origin_allowed(o, 3, "", 0));
    CHECK(!auth_origin_allowed(o, 3, NULL, 0));

    const char *yes[] = {"https://chat.example.com", "HTTPS://Chat.Example.COM",
                         "http://localhost:8080", "null"};
    for (size_t i = 0; i < 4; i++)
        CHECKF(auth_origin_allowed(o, 3, yes[i], strlen(yes[i])), "%s", yes[i]);
    const char *no[] = {"https://chat.example.com/",     "https://chat.example.co",
                        "https://chat.example.com.evil", "http://chat.example.com",
                        "https://chat.example.com:443",  "http://localhost",
                        "http://localhost:80",           "nul"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        CHECKF(!auth_origin_allowed(o, 3, no[i], strlen(no[i])), "%s", no[i]);
    /* not NUL terminated: only len bytes count */
    const char *longer = "https://chat.example.com.evil";
    CHECK(auth_origin_allowed(o, 3, longer, 24));
    CHECK(!auth_origin_allowed(o, 3, longer, 25));
}

int main(void)
{
    test_open_and_missing();
    test_good_tokens();
    test_signature();
    test_forged_alg();
    test_libjwt_pins();
    test_time();
    test_exp_required_and_max_age();
    test_sub();
    test_iss_aud();
    test_malformed();
    test_guard_page();
    test_result_str();
    test_origin();
    return tap_done();
}
