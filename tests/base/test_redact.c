/* test_redact.c - base/redact.h: credentials and query values never survive url_redact, what
 * locates the resource does, and a short buffer only cuts the output. */
#include "base/redact.h"

#include <string.h>

#include "tests/tap.h"

static void expect(const char *in, const char *want)
{
    char out[512];
    size_t n = url_redact(in, out, sizeof(out));
    CHECKF(strcmp(out, want) == 0 && n == strlen(want), "%s -> %s (want %s)", in, out, want);
}

int main(void)
{
    /* the issue's example */
    expect("http://user:pass@host/v1?key=sk-123", "http://***@host/v1?key=***");
    expect("https://api.openai.com/v1", "https://api.openai.com/v1");
    expect("https://api.example.com:8443/v1/", "https://api.example.com:8443/v1/");
    expect("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1");
    expect("https://token@host", "https://***@host");
    expect("https://a@b:c@host:1/p", "https://***@host:1/p"); /* the last '@' ends userinfo */
    expect("https://[::1]:8080/x?a=1&b=&c", "https://[::1]:8080/x?a=***&b=***&***");
    expect("https://h/p?key=a%20b;sig=x#frag", "https://h/p?key=***;sig=***#***");
    expect("https://h/p?", "https://h/p?");
    expect("https://h/p#", "https://h/p#");
    expect("https://h/p?sk-live-abc", "https://h/p?***");
    expect("https://h/a@b/c", "https://h/a@b/c"); /* '@' in the path is not userinfo */
    expect("https://h?x=1", "https://h?x=***");
    expect("postgres://app:s3cret@db.internal:5432/trilemma?sslmode=require&password=x",
           "postgres://***@db.internal:5432/trilemma?sslmode=***&password=***");
    expect("user:pw@db:5432/x", "***@db:5432/x");
    expect("/relative/path?q=1", "/relative/path?q=***");
    expect("", "");
    /* nothing secret survives in a long or odd input */
    const char *secret = "hunter2-SECRET";
    char in[256], out[256];
    snprintf(in, sizeof(in), "https://me:%s@h/?a=%s&%s#%s", secret, secret, secret, secret);
    url_redact(in, out, sizeof(out));
    CHECKF(strstr(out, secret) == NULL, "%s", out);
    /* short buffers cut, always terminated; cap 0 writes nothing */
    char small[12];
    size_t n = url_redact("https://user:pw@host/v1?k=v", small, sizeof(small));
    CHECK(n == 11 && strcmp(small, "https://***") == 0);
    char none[1] = {'x'};
    CHECK(url_redact("https://h", none, 0) == 0 && none[0] == 'x');
    CHECK(url_redact("https://h", none, 1) == 0 && none[0] == '\0');
    return tap_done();
}
