/* redact.c - personal data out of trace content (redact.h).
 *
 * One pass over the text: at the start of a word, an e-mail address or a run of digits is
 * recognised and replaced whole; everything else is copied. A run of digits is a card only when
 * its separators are spaces or dashes and the Luhn check passes (so an order number or a price
 * stays), a phone number when it has 10 to 15 digits. */
#include "trace/redact.h"

#include <string.h>

#include "trace/trace.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool local_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static bool domain_char(char c)
{
    return is_alnum(c) || c == '.' || c == '-';
}

/* The Luhn check over the digits; see redact.h. */
bool redact_luhn_ok(const char *s, size_t n)
{
    int sum = 0, k = 0;
    for (size_t i = n; i-- > 0;) {
        if (!is_digit(s[i]))
            continue;
        int d = s[i] - '0';
        if (k++ % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return k > 0 && sum % 10 == 0;
}

/* An e-mail address starting at in[i] (a word start): its length, or 0. */
static size_t email_at(const char *in, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && local_char(in[j]))
        j++;
    if (j == i || j >= n || in[j] != '@')
        return 0;
    size_t d = ++j, last_dot = 0;
    while (j < n && domain_char(in[j]))
        j++;
    while (j > d && (in[j - 1] == '.' || in[j - 1] == '-'))
        j--; /* "mail me at a@b.com." ends the sentence */
    for (size_t k = d; k < j; k++)
        if (in[k] == '.')
            last_dot = k;
    if (!last_dot || last_dot == d || j - last_dot < 3)
        return 0;
    for (size_t k = last_dot + 1; k < j; k++)
        if (is_digit(in[k]) || in[k] == '-')
            return 0; /* a top-level domain is letters */
    return j - i;
}

/* A run of digits and separators at in[i]: its length (trailing separators dropped), the count
 * of digits and whether only spaces and dashes separate them. */
static size_t digits_at(const char *in, size_t n, size_t i, int *digits, bool *card_seps)
{
    size_t j = i, end = i;
    int d = 0;
    bool cs = true, prev_sep = false;
    char sep = 0; /* the separator since the last digit, judged once a digit follows it */
    if (j < n && (in[j] == '+' || in[j] == '('))
        j++, cs = false;
    for (; j < n; j++) {
        char c = in[j];
        if (is_digit(c)) {
            d++;
            end = j + 1;
            cs &= !sep || sep == ' ' || sep == '-';
            prev_sep = false;
            sep = 0;
        } else if ((c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && !prev_sep) {
            if (!sep || c == '(' || c == ')')
                sep = c == ')' ? '(' : c; /* parentheses: never a card */
            prev_sep = c != ')' && c != '(';
        } else {
            break;
        }
    }
    *digits = d;
    *card_seps = cs;
    return end - i;
}

/* Replace the patterns of mask; see redact.h. */
size_t redact_apply(uint32_t mask, const char *in, size_t n, struct buf *out)
{
    size_t count = 0, i = 0, copied = 0;
    while (i < n) {
        bool word_start = i == 0 || !is_alnum(in[i - 1]);
        size_t len = 0;
        const char *mark = NULL;
        if (word_start && (mask & REDACT_EMAIL) && local_char(in[i]))
            if ((len = email_at(in, n, i)))
                mark = "[email]";
        if (!mark && word_start && (is_digit(in[i]) || in[i] == '+' || in[i] == '(')) {
            int d;
            bool cs;
            len = digits_at(in, n, i, &d, &cs);
            bool ends = i + len >= n || !is_alnum(in[i + len]);
            if (ends && (mask & REDACT_CARD) && cs && d >= 13 && d <= 19 &&
                redact_luhn_ok(in + i, len))
                mark = "[card]";
            else if (ends && (mask & REDACT_PHONE) && d >= 10 && d <= 15)
                mark = "[phone]";
        }
        if (!mark) {
            i++;
            continue;
        }
        buf_append(out, in + copied, i - copied);
        buf_append_str(out, mark);
        count++;
        i += len;
        copied = i;
    }
    buf_append(out, in + copied, n - copied);
    return count;
}

/* Parse "card,phone,email" / "none"; see redact.h. */
int redact_parse(const char *list, uint32_t *mask)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } k[] = {{"card", REDACT_CARD}, {"phone", REDACT_PHONE}, {"email", REDACT_EMAIL}};
    uint32_t m = 0;
    const char *p = list;
    if (!strcmp(list, "none")) {
        *mask = 0;
        return 0;
    }
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t w = strcspn(p, ", ");
        if (!w)
            break;
        size_t i = 0;
        while (i < 3 && !(strlen(k[i].name) == w && !memcmp(k[i].name, p, w)))
            i++;
        if (i == 3)
            return -1;
        m |= k[i].bit;
        p += w;
    }
    *mask = m;
    return 0;
}
