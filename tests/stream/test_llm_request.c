/* test_llm_request.c - the request side of stream/llm.h: bodies and paths built for each provider
 * (parsed back with json.h: fields, system placement, stream_options.include_usage, defaults,
 * refusals), auth header lines, error bodies (messages, types, retryability, no key echoed), and
 * provider names / base URLs. The streaming side is in test_llm.c. */
#include "base/buf.h"
#include "stream/json.h"
#include "stream/llm.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The content of b ("" when nothing was ever appended: buf_begin would be NULL + 0). */
static const char *bstr(const struct buf *b)
{
    return b->data ? buf_begin(b) : "";
}

static bool buf_is(const struct buf *b, const char *s)
{
    return buf_size(b) == strlen(s) && !memcmp(bstr(b), s, buf_size(b));
}

/* ---- requests ---------------------------------------------------------------------------- */

#define MSG(role, lit)                                                                             \
    {                                                                                              \
        role, lit, sizeof(lit) - 1                                                                 \
    }
static const struct llm_message conv[] = {
    MSG("system", "Be brief."),   MSG("user", "Hi \"there\" \xc3\xa9\n"),
    MSG("system", "Use metric."), MSG("assistant", "Hello"),
    MSG("user", "Weather?"),
};
static const struct llm_tool tools[] = {
    {"get_weather", "Current weather",
     "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]"
     "}"},
};

static void build(enum llm_provider p, const struct llm_request *r, json_doc *d, char *path)
{
    struct buf body = {0};
    int rc = llm_build_request(p, r, &body, path, 128);
    CHECKF(rc == 0, "%s: build rc %d", llm_provider_name(p), rc);
    rc = json_doc_load(d, bstr(&body), buf_size(&body));
    CHECKF(rc == 0, "%s: body does not parse: %.*s", llm_provider_name(p), (int)buf_size(&body),
           bstr(&body));
    buf_free(&body);
}

static bool str_at(json_doc *d, const char *ptr, const char *want)
{
    const char *s;
    size_t n;
    return json_get_string(d, ptr, &s, &n) == 0 && n == strlen(want) && !memcmp(s, want, n);
}

static int64_t int_at(json_doc *d, const char *ptr)
{
    int64_t v = -1;
    json_get_int(d, ptr, &v);
    return v;
}

static void test_request_openai(json_doc *d)
{
    struct llm_request r = {"gpt-4.1-mini", conv, 5, tools, 1, 256, 0.5};
    char path[128];
    size_t n = 0;
    double t = 0;
    bool b = false;
    build(LLM_OPENAI, &r, d, path);
    CHECK(!strcmp(path, "/chat/completions"));
    CHECK(str_at(d, "/model", "gpt-4.1-mini"));
    CHECK(json_count(d, "/messages", &n) == 0 && n == 5);
    CHECK(str_at(d, "/messages/0/role", "system") && str_at(d, "/messages/0/content", "Be brief."));
    CHECK(str_at(d, "/messages/1/content", "Hi \"there\" \xc3\xa9\n"));
    CHECK(str_at(d, "/messages/3/role", "assistant"));
    CHECK(json_get_bool(d, "/stream", &b) == 0 && b);
    CHECK(json_get_bool(d, "/stream_options/include_usage", &b) == 0 && b);
    CHECK(int_at(d, "/max_tokens") == 256);
    CHECK(json_get_double(d, "/temperature", &t) == 0 && t == 0.5);
    CHECK(str_at(d, "/tools/0/type", "function") &&
          str_at(d, "/tools/0/function/name", "get_weather") &&
          str_at(d, "/tools/0/function/description", "Current weather") &&
          str_at(d, "/tools/0/function/parameters/required/0", "city"));

    r.max_tokens = 0;
    r.temperature = -1;
    r.n_tools = 0;
    build(LLM_OPENAI, &r, d, path);
    CHECK(json_type_at(d, "/max_tokens") == JSON_MISSING &&
          json_type_at(d, "/temperature") == JSON_MISSING &&
          json_type_at(d, "/tools") == JSON_MISSING);
    CHECK(json_get_bool(d, "/stream_options/include_usage", &b) == 0 && b);
}

static void test_request_anthropic(json_doc *d)
{
    struct llm_request r = {"claude-sonnet-4-5", conv, 5, tools, 1, 0, -1};
    char path[128];
    size_t n = 0;
    bool b = false;
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(!strcmp(path, "/v1/messages"));
    CHECK(str_at(d, "/model", "claude-sonnet-4-5"));
    CHECK(int_at(d, "/max_tokens") == 1024); /* required: the default */
    CHECK(json_get_bool(d, "/stream", &b) == 0 && b);
    CHECK(str_at(d, "/system", "Be brief.\n\nUse metric."));
    CHECK(json_count(d, "/messages", &n) == 0 && n == 3);
    CHECK(str_at(d, "/messages/0/role", "user") &&
          str_at(d, "/messages/0/content", "Hi \"there\" \xc3\xa9\n") &&
          str_at(d, "/messages/1/role", "assistant") && str_at(d, "/messages/2/role", "user"));
    CHECK(json_type_at(d, "/temperature") == JSON_MISSING);
    CHECK(str_at(d, "/tools/0/name", "get_weather") &&
          str_at(d, "/tools/0/description", "Current weather") &&
          str_at(d, "/tools/0/input_schema/type", "object"));

    r.max_tokens = 4000;
    r.messages = conv + 3;
    r.n_messages = 2;
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(int_at(d, "/max_tokens") == 4000 && json_type_at(d, "/system") == JSON_MISSING);
}

/* Prompt caching: Anthropic breakpoints on the last tool and the first system block (the agent's
 * prompt), none elsewhere; OpenAI prompt_cache_key; Gemini sends nothing (implicit caching). */
static void test_request_prompt_cache(json_doc *d)
{
    static const struct llm_tool two[] = {
        {"a", "first", "{\"type\":\"object\"}"},
        {"b", "second", "{\"type\":\"object\"}"},
    };
    struct llm_request r = {"claude-sonnet-4-5", conv, 5, two, 2, 0, -1};
    r.cache_prefix = true;
    r.cache_key = "search:0123456789ab";
    char path[128];
    size_t n = 0;
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(json_count(d, "/system", &n) == 0 && n == 2);
    CHECK(str_at(d, "/system/0/type", "text") && str_at(d, "/system/0/text", "Be brief.") &&
          str_at(d, "/system/0/cache_control/type", "ephemeral"));
    CHECK(str_at(d, "/system/1/text", "Use metric.") &&
          json_type_at(d, "/system/1/cache_control") == JSON_MISSING);
    CHECK(json_type_at(d, "/tools/0/cache_control") == JSON_MISSING &&
          str_at(d, "/tools/1/cache_control/type", "ephemeral"));
    CHECK(json_type_at(d, "/prompt_cache_key") == JSON_MISSING);
    CHECK(json_type_at(d, "/messages/0/cache_control") == JSON_MISSING &&
          json_type_at(d, "/messages/2/content/0/cache_control") == JSON_MISSING &&
          str_at(d, "/messages/2/content", "Weather?"));
    /* a whole conversation: a breakpoint on the last message as well, and only there */
    r.cache_history = true;
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(str_at(d, "/messages/2/content/0/text", "Weather?") &&
          str_at(d, "/messages/2/content/0/cache_control/type", "ephemeral"));
    CHECK(str_at(d, "/messages/0/content", "Hi \"there\" \xc3\xa9\n"));
    r.cache_history = false;

    /* no tools, an empty system message: no empty text block, the breakpoint on the first real one
     */
    static const struct llm_message m2[] = {MSG("system", ""), MSG("system", "Prompt."),
                                            MSG("user", "Hi")};
    r.messages = m2;
    r.n_messages = 3;
    r.n_tools = 0;
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(json_count(d, "/system", &n) == 0 && n == 1 &&
          str_at(d, "/system/0/cache_control/type", "ephemeral"));
    CHECK(json_type_at(d, "/tools") == JSON_MISSING);

    r.messages = conv;
    r.n_messages = 5;
    r.n_tools = 2;
    r.model = "gpt-4.1-mini";
    build(LLM_OPENAI, &r, d, path);
    CHECK(str_at(d, "/prompt_cache_key", "search:0123456789ab"));
    CHECK(json_type_at(d, "/tools/1/cache_control") == JSON_MISSING);
    r.cache_key = "";
    build(LLM_OPENAI, &r, d, path);
    CHECK(json_type_at(d, "/prompt_cache_key") == JSON_MISSING);

    r.cache_key = "k";
    r.model = "gemini-2.5-flash";
    build(LLM_GEMINI, &r, d, path);
    CHECK(json_type_at(d, "/prompt_cache_key") == JSON_MISSING &&
          json_type_at(d, "/cachedContent") == JSON_MISSING);
}

static void test_request_gemini(json_doc *d)
{
    struct llm_request r = {"gemini-2.5-flash", conv, 5, tools, 1, 512, 0.25};
    char path[128];
    size_t n = 0;
    double t = 0;
    build(LLM_GEMINI, &r, d, path);
    CHECK(!strcmp(path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"));
    CHECK(json_count(d, "/contents", &n) == 0 && n == 3);
    CHECK(str_at(d, "/contents/0/role", "user") &&
          str_at(d, "/contents/0/parts/0/text", "Hi \"there\" \xc3\xa9\n") &&
          str_at(d, "/contents/1/role", "model") && str_at(d, "/contents/2/role", "user"));
    CHECK(str_at(d, "/systemInstruction/parts/0/text", "Be brief.") &&
          str_at(d, "/systemInstruction/parts/1/text", "Use metric."));
    CHECK(int_at(d, "/generationConfig/maxOutputTokens") == 512);
    CHECK(json_get_double(d, "/generationConfig/temperature", &t) == 0 && t == 0.25);
    CHECK(str_at(d, "/tools/0/functionDeclarations/0/name", "get_weather") &&
          str_at(d, "/tools/0/functionDeclarations/0/parameters/type", "object"));
    CHECK(json_type_at(d, "/model") == JSON_MISSING);

    r.model = "models/tuned a/b";
    r.max_tokens = 0;
    r.temperature = -1;
    r.n_messages = 2;
    build(LLM_GEMINI, &r, d, path);
    CHECK(!strcmp(path, "/v1beta/models/tuned%20a%2Fb:streamGenerateContent?alt=sse"));
    CHECK(json_type_at(d, "/generationConfig") == JSON_MISSING);
}

static void test_request_errors(void)
{
    struct buf body = {0};
    char path[128];
    buf_append_str(&body, "keep");
    const struct llm_message sys_only[] = {{"system", "x", 1}};
    const struct llm_message bad_role[] = {{"tool", "x", 1}};
    const struct llm_tool no_name[] = {{NULL, NULL, NULL}};
    struct llm_request ok = {"m", conv, 5, NULL, 0, 0, -1};
    struct llm_request r;

    for (int p = 0; p < LLM__COUNT; p++) {
        r = ok;
        r.model = NULL;
        CHECK(llm_build_request(p, &r, &body, path, sizeof(path)) == -EINVAL);
        r = ok;
        r.n_messages = 0;
        CHECK(llm_build_request(p, &r, &body, path, sizeof(path)) == -EINVAL);
        r = ok;
        r.messages = bad_role;
        r.n_messages = 1;
        CHECK(llm_build_request(p, &r, &body, path, sizeof(path)) == -EINVAL);
        r = ok;
        r.tools = no_name;
        r.n_tools = 1;
        CHECK(llm_build_request(p, &r, &body, path, sizeof(path)) == -EINVAL);
        CHECK(llm_build_request(p, &ok, &body, path, 8) == -ENOSPC);
        r = ok;
        r.messages = sys_only;
        r.n_messages = 1;
        int rc = llm_build_request(p, &r, &body, path, sizeof(path));
        CHECK(p == LLM_OPENAI ? rc == 0 : rc == -EINVAL);
        if (rc == 0)
            body.len = body.off + 4;
        CHECK(buf_is(&body, "keep")); /* nothing appended on failure */
    }
    CHECK(llm_build_request(LLM__COUNT, &ok, &body, path, sizeof(path)) == -EINVAL);
    buf_free(&body);
}

static void test_auth_headers(void)
{
    char h[2][512];
    CHECK(llm_auth_headers(LLM_OPENAI, "sk-test", h) == 1 &&
          !strcmp(h[0], "Authorization: Bearer sk-test"));
    CHECK(llm_auth_headers(LLM_ANTHROPIC, "sk-ant-test", h) == 2 &&
          !strcmp(h[0], "x-api-key: sk-ant-test") &&
          !strcmp(h[1], "anthropic-version: 2023-06-01"));
    CHECK(llm_auth_headers(LLM_GEMINI, "AIzaTest", h) == 1 &&
          !strcmp(h[0], "x-goog-api-key: AIzaTest"));
    CHECK(llm_auth_headers(LLM_OPENAI, NULL, h) == 0);
    CHECK(llm_auth_headers(LLM_GEMINI, "", h) == 0);
    CHECK(llm_auth_headers(LLM_ANTHROPIC, NULL, h) == 1 &&
          !strcmp(h[0], "anthropic-version: 2023-06-01"));
    CHECK(llm_auth_headers(LLM_OPENAI, "sk-x\r\nX-Evil: 1", h) == -EINVAL && !h[0][0]);
    char longkey[600];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    CHECK(llm_auth_headers(LLM_GEMINI, longkey, h) == -EINVAL && !h[0][0]);
    CHECK(llm_auth_headers(LLM__COUNT, "k", h) == -EINVAL);
}

/* ---- error bodies ------------------------------------------------------------------------ */

static void test_parse_error(void)
{
    static const struct {
        enum llm_provider p;
        int status;
        const char *body;
        const char *type, *msg; /* msg: a substring the text must contain */
        bool retry;
    } cases[] = {
        {LLM_OPENAI, 401,
         "{\"error\":{\"message\":\"Incorrect API key provided: sk-proj-abc123XYZ456def789. You "
         "can find your API key at https://platform.openai.com/account/api-keys.\",\"type\":"
         "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
         "invalid_request_error", "Incorrect API key provided: [redacted] You can find", false},
        {LLM_OPENAI, 429,
         "{\"error\":{\"message\":\"Rate limit reached for gpt-4.1-mini\",\"type\":\"requests\","
         "\"param\":null,\"code\":\"rate_limit_exceeded\"}}",
         "requests", "Rate limit reached for gpt-4.1-mini", true},
        {LLM_OPENAI, 429,
         "{\"error\":{\"message\":\"You exceeded your current quota\",\"type\":"
         "\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}",
         "insufficient_quota", "current quota", false},
        {LLM_OPENAI, 404, "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}",
         "bad_request", "model \"llama9\" not found", false},
        {LLM_OPENAI, 500, "{\"error\":{\"message\":\"boom\",\"type\":null}}", "server_error",
         "boom", true},
        {LLM_ANTHROPIC, 529,
         "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
         "\"Overloaded\"},\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}",
         "overloaded_error", "Overloaded", true},
        {LLM_ANTHROPIC, 200,
         "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"O\"}}",
         "overloaded_error", "O", true},
        {LLM_ANTHROPIC, 400,
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
         "\"max_tokens: Field required\"}}",
         "invalid_request_error", "max_tokens: Field required", false},
        {LLM_ANTHROPIC, 401,
         "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
         "\"invalid x-api-key\"}}",
         "authentication_error", "invalid x-api-key", false},
        {LLM_GEMINI, 429,
         "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check "
         "quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
         "RESOURCE_EXHAUSTED", "Resource has been exhausted", true},
        {LLM_GEMINI, 400,
         "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key "
         "(AIzaSyD3adb33fDEADBEEF0123456789abcdEF).\",\"status\":\"INVALID_ARGUMENT\"}}",
         "INVALID_ARGUMENT", "Please pass a valid API key ([redacted]).", false},
        {LLM_GEMINI, 503,
         "[{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":"
         "\"UNAVAILABLE\"}}]",
         "UNAVAILABLE", "The model is overloaded.", true},
        {LLM_OPENAI, 502, "<html><body>502 Bad Gateway</body></html>", "server_error", "HTTP 502",
         true},
        {LLM_ANTHROPIC, 503, "", "overloaded", "HTTP 503", true},
        {LLM_GEMINI, 403, "{\"unexpected\":true}", "auth", "HTTP 403", false},
        {LLM_OPENAI, 408, "timeout", "timeout", "HTTP 408", true},
        {LLM_OPENAI, 409, "x", "http_error", "HTTP 409", true},
        {LLM_OPENAI, 422, "{\"detail\":\"Unprocessable\"}", "bad_request", "Unprocessable", false},
        {LLM_ANTHROPIC, 404,
         "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: "
         "claude-3-5-sonnet-20241022\"}}",
         "not_found_error", "model: claude-3-5-sonnet-20241022", false},
        {LLM_OPENAI, 401,
         "{\"error\":{\"message\":\"Invalid token AbCdEf0123456789AbCdEf0123456789AbCdEf01 for "
         "gsk_abcdefgh\",\"type\":\"auth\"}}",
         "auth", "Invalid token [redacted] for [redacted]", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct llm_event ev;
        llm_parse_error(cases[i].p, cases[i].status, cases[i].body, strlen(cases[i].body), &ev);
        char text[600];
        snprintf(text, sizeof(text), "%.*s", (int)ev.len, ev.text);
        CHECKF(ev.type == LLM_EV_ERROR && ev.http_status == cases[i].status &&
                   !strcmp(ev.error_type, cases[i].type) && strstr(text, cases[i].msg) &&
                   ev.retryable == cases[i].retry,
               "error %zu: %s '%s' retry %d", i, ev.error_type, text, ev.retryable);
        CHECKF(!strstr(text, "sk-proj") && !strstr(text, "AIzaSy"), "error %zu leaks a key", i);
    }

    /* a long message is cut on a character boundary */
    struct buf body = {0};
    buf_append_str(&body, "{\"error\":{\"message\":\"");
    for (int i = 0; i < 400; i++)
        buf_append_str(&body, "\xc3\xa9");
    buf_append_str(&body, "\"}}");
    struct llm_event ev;
    llm_parse_error(LLM_OPENAI, 400, bstr(&body), buf_size(&body), &ev);
    CHECK(ev.len < 512 && ev.len % 2 == 0 && ev.text[ev.len] == '\0');
    buf_free(&body);
}

static void test_names(void)
{
    CHECK(llm_provider_from_name("openai", 6) == LLM_OPENAI);
    CHECK(llm_provider_from_name("anthropic", 9) == LLM_ANTHROPIC);
    CHECK(llm_provider_from_name("gemini", 6) == LLM_GEMINI);
    CHECK(llm_provider_from_name("gemini/x", 6) == LLM_GEMINI);
    CHECK(llm_provider_from_name("open", 4) == -1);
    CHECK(llm_provider_from_name("OpenAI", 6) == -1);
    CHECK(!strcmp(llm_provider_name(LLM_ANTHROPIC), "anthropic"));
    CHECK(!strcmp(llm_provider_name(LLM__COUNT), "unknown"));
    CHECK(!strcmp(llm_default_base_url(LLM_OPENAI), "https://api.openai.com/v1"));
    CHECK(!strcmp(llm_default_base_url(LLM_ANTHROPIC), "https://api.anthropic.com"));
    CHECK(!strcmp(llm_default_base_url(LLM_GEMINI), "https://generativelanguage.googleapis.com"));
}

/* ---- tool calls and results: exact bodies ------------------------------------------------ */

#define LIT(s) s, sizeof(s) - 1

/* A tool step: the model called get_offers twice in one turn (no text), one call succeeded, one
 * failed; results carry characters that need escaping. */
static const struct llm_msg_tool_call two_calls[] = {
    {"call_1", "get_offers", LIT("{\"id\":\"P1\",\"pincode\":\"560001\"}")},
    {"call_2", "get_offers", LIT("{\"id\":\"P2\",\"pincode\":\"560001\"}")},
};
static const struct llm_message tool_conv[] = {
    {"system", "S", 1},
    {"user", "Compare", 7},
    {"assistant", "", 0, two_calls, 2},
    {"tool", LIT("{\"price\":100}"), NULL, 0, "call_1", "get_offers", false},
    {"tool", LIT("HTTP 500: \"oops\"\n"), NULL, 0, "call_2", "get_offers", true},
};

static void expect_body(enum llm_provider p, const struct llm_request *r, const char *want)
{
    struct buf body = {0};
    char path[128];
    int rc = llm_build_request(p, r, &body, path, sizeof(path));
    CHECKF(rc == 0 && buf_is(&body, want), "%s: rc %d\n got: %.*s\nwant: %s", llm_provider_name(p),
           rc, (int)buf_size(&body), bstr(&body), want);
    buf_free(&body);
}

static void test_tool_turn_openai(void)
{
    struct llm_request r = {"m", tool_conv, 5, NULL, 0, 0, -1, NULL};
    expect_body(LLM_OPENAI, &r,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                "{\"role\":\"user\",\"content\":\"Compare\"},"
                "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
                "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_offers\","
                "\"arguments\":\"{\\\"id\\\":\\\"P1\\\",\\\"pincode\\\":\\\"560001\\\"}\"}},"
                "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_offers\","
                "\"arguments\":\"{\\\"id\\\":\\\"P2\\\",\\\"pincode\\\":\\\"560001\\\"}\"}}]},"
                "{\"role\":\"tool\",\"content\":\"{\\\"price\\\":100}\",\"tool_call_id\":"
                "\"call_1\"},"
                "{\"role\":\"tool\",\"content\":\"HTTP 500: \\\"oops\\\"\\n\",\"tool_call_id\":"
                "\"call_2\"}],"
                "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

static void test_tool_turn_anthropic(void)
{
    struct llm_request r = {"m", tool_conv, 5, NULL, 0, 100, -1, NULL};
    expect_body(LLM_ANTHROPIC, &r,
                "{\"model\":\"m\",\"max_tokens\":100,\"stream\":true,\"system\":\"S\","
                "\"messages\":[{\"role\":\"user\",\"content\":\"Compare\"},"
                "{\"role\":\"assistant\",\"content\":["
                "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_offers\","
                "\"input\":{\"id\":\"P1\",\"pincode\":\"560001\"}},"
                "{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"get_offers\","
                "\"input\":{\"id\":\"P2\",\"pincode\":\"560001\"}}]},"
                "{\"role\":\"user\",\"content\":["
                "{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":"
                "\"{\\\"price\\\":100}\"},"
                "{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\",\"content\":"
                "\"HTTP 500: \\\"oops\\\"\\n\",\"is_error\":true}]}]}");
}

static void test_tool_turn_gemini(void)
{
    struct llm_request r = {"m", tool_conv, 5, NULL, 0, 0, -1, NULL};
    expect_body(LLM_GEMINI, &r,
                "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Compare\"}]},"
                "{\"role\":\"model\",\"parts\":["
                "{\"functionCall\":{\"name\":\"get_offers\","
                "\"args\":{\"id\":\"P1\",\"pincode\":\"560001\"}}},"
                "{\"functionCall\":{\"name\":\"get_offers\","
                "\"args\":{\"id\":\"P2\",\"pincode\":\"560001\"}}}]},"
                "{\"role\":\"user\",\"parts\":["
                "{\"functionResponse\":{\"name\":\"get_offers\",\"response\":{\"price\":100}}},"
                "{\"functionResponse\":{\"name\":\"get_offers\",\"response\":"
                "{\"error\":\"HTTP 500: \\\"oops\\\"\\n\"}}}]}],"
                "\"systemInstruction\":{\"parts\":[{\"text\":\"S\"}]}}");
}

/* Text before the calls, a plain-text result, arguments left empty ({}), and tool_choice. */
static void test_tool_text_and_choice(json_doc *d)
{
    static const struct llm_msg_tool_call one[] = {{"t1", "get_weather", NULL, 0}};
    static const struct llm_message msgs[] = {
        {"user", "Weather?", 8},
        {"assistant", "Let me look.", 12, one, 1},
        {"tool", "sunny", 5, NULL, 0, "t1", "get_weather", false},
    };
    struct llm_request r = {"m", msgs, 3, tools, 1, 0, -1, "get_weather"};
    char path[128];

    build(LLM_OPENAI, &r, d, path);
    CHECK(str_at(d, "/messages/1/content", "Let me look.") &&
          str_at(d, "/messages/1/tool_calls/0/function/arguments", "{}"));
    CHECK(str_at(d, "/tool_choice/type", "function") &&
          str_at(d, "/tool_choice/function/name", "get_weather"));
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(str_at(d, "/messages/1/content/0/type", "text") &&
          str_at(d, "/messages/1/content/0/text", "Let me look.") &&
          json_type_at(d, "/messages/1/content/1/input") == JSON_OBJECT);
    CHECK(json_type_at(d, "/messages/2/content/0/is_error") == JSON_MISSING);
    CHECK(str_at(d, "/tool_choice/type", "tool") && str_at(d, "/tool_choice/name", "get_weather"));
    build(LLM_GEMINI, &r, d, path);
    CHECK(str_at(d, "/contents/1/parts/0/text", "Let me look.") &&
          str_at(d, "/contents/1/parts/1/functionCall/name", "get_weather"));
    CHECK(str_at(d, "/contents/2/parts/0/functionResponse/response/output", "sunny"));
    CHECK(str_at(d, "/toolConfig/functionCallingConfig/mode", "ANY") &&
          str_at(d, "/toolConfig/functionCallingConfig/allowedFunctionNames/0", "get_weather"));

    r.tool_choice = "required";
    build(LLM_OPENAI, &r, d, path);
    CHECK(str_at(d, "/tool_choice", "required"));
    build(LLM_ANTHROPIC, &r, d, path);
    CHECK(str_at(d, "/tool_choice/type", "any") &&
          json_type_at(d, "/tool_choice/name") == JSON_MISSING);
    r.tool_choice = "none";
    build(LLM_GEMINI, &r, d, path);
    CHECK(str_at(d, "/toolConfig/functionCallingConfig/mode", "NONE") &&
          json_type_at(d, "/toolConfig/functionCallingConfig/allowedFunctionNames") ==
              JSON_MISSING);
    r.n_tools = 0; /* no tools: no choice sent */
    build(LLM_OPENAI, &r, d, path);
    CHECK(json_type_at(d, "/tool_choice") == JSON_MISSING);
}

/* Malformed tool parts are refused by every provider, before anything is written. */
static void test_tool_errors(void)
{
    static const struct llm_msg_tool_call not_object[] = {{"c", "f", "[1,2]", 5}};
    static const struct llm_msg_tool_call not_json[] = {{"c", "f", "{\"a\":", 5}};
    static const struct llm_msg_tool_call no_id[] = {{"", "f", "{}", 2}};
    static const struct llm_msg_tool_call no_name[] = {{"c", NULL, "{}", 2}};
    static const struct llm_message bad[][2] = {
        {{"user", "u", 1}, {"assistant", "", 0, not_object, 1}},
        {{"user", "u", 1}, {"assistant", "", 0, not_json, 1}},
        {{"user", "u", 1}, {"assistant", "", 0, no_id, 1}},
        {{"user", "u", 1}, {"assistant", "", 0, no_name, 1}},
        {{"user", "u", 1, not_object + 0, 0}, {"user", "x", 1, no_id, 1}}, /* calls on user */
        {{"user", "u", 1}, {"tool", "r", 1, NULL, 0, NULL, "f", false}},   /* no call id */
        {{"user", "u", 1}, {"tool", "r", 1, NULL, 0, "c", NULL, false}},   /* no tool name */
        {{"user", "u", 1}, {"user", "r", 1, NULL, 0, "c", "f", false}},    /* id on a user msg */
    };
    struct buf body = {0};
    char path[128];
    buf_append_str(&body, "keep");
    for (int p = 0; p < LLM__COUNT; p++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            struct llm_request r = {"m", bad[i], 2, NULL, 0, 0, -1, NULL};
            int rc = llm_build_request(p, &r, &body, path, sizeof(path));
            CHECKF(rc == -EINVAL, "%s case %zu: rc %d", llm_provider_name(p), i, rc);
        }
        struct llm_request r = {"m", conv, 5, tools, 1, 0, -1, "no_such_tool"};
        CHECK(llm_build_request(p, &r, &body, path, sizeof(path)) == -EINVAL);
        CHECK(buf_is(&body, "keep"));
    }
    buf_free(&body);
}

int main(void)
{
    test_names();
    json_doc *d = json_doc_create();
    test_request_openai(d);
    test_request_anthropic(d);
    test_request_gemini(d);
    test_request_prompt_cache(d);
    json_doc_destroy(d);
    test_request_errors();
    test_auth_headers();
    test_parse_error();
    test_tool_turn_openai();
    test_tool_turn_anthropic();
    test_tool_turn_gemini();
    d = json_doc_create();
    test_tool_text_and_choice(d);
    json_doc_destroy(d);
    test_tool_errors();
    return tap_done();
}
