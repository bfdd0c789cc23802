/* ini_strict.c - inih's ini_parse_stream() over our own line reader.
 *
 * The reader hands inih one physical line per call, so inih's line numbers are ours (inih's
 * own count drifts after an over-long line, which it silently splits in two). It refuses what
 * inih would quietly accept or misread: over-long lines, NUL bytes, indented lines (inih's
 * INI_ALLOW_MULTILINE would glue them onto the previous key), ':' separators, malformed
 * section headers; known sections are the caller's business (on_section). A UTF-8 byte order
 * mark on line 1 and a trailing '\r' are dropped. */
#include "base/ini_strict.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

/* See ini_strict.h. */
void ini_strict_error(struct ini_strict *st, const char *fmt, ...)
{
    if (st->err_line)
        return;
    st->err_line = st->line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
    va_end(ap);
}

/* inih's find_chars_or_comment(): the first of stop, or an inline ';' comment (one preceded
 * by whitespace), or the end. */
static const char *find_or_comment(const char *s, const char *stop)
{
    for (const char *p = s; *p; p++) {
        if (strchr(stop, *p))
            return p;
        if (*p == ';' && p > s && isspace((unsigned char)p[-1]))
            return p;
    }
    return s + strlen(s);
}

static bool blank_or_comment(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0' || *s == ';';
}

static void check_section_line(struct ini_strict *st, const char *s)
{
    const char *end = find_or_comment(s + 1, "]");
    if (*end != ']') {
        ini_strict_error(st, "unterminated section header");
        return;
    }
    if (!blank_or_comment(end + 1)) {
        ini_strict_error(st, "junk after section header");
        return;
    }
    st->on_section(st, s + 1, (size_t)(end - s - 1));
}

/* Reports what inih would reject (with a message of ours) or would misread. */
static void check_line(struct ini_strict *st, const char *line)
{
    const char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == ';' || *s == '#')
        return;
    if (s != line) {
        ini_strict_error(st, "indented line (continuation lines are not supported)");
        return;
    }
    if (*s == '[') {
        check_section_line(st, s);
        return;
    }
    if (*find_or_comment(s, "=:") != '=')
        ini_strict_error(st, "expected 'key = value'");
}

/* ini_reader: one physical line per call, so inih's line count is ours. */
static char *read_line(char *str, int num, void *stream)
{
    struct ini_strict *st = stream;
    size_t n = 0, max = num > 3 ? (size_t)num - 3 : 0;
    bool nul = false;
    int ch;

    while ((ch = getc(st->f)) != EOF && ch != '\n') {
        nul |= ch == '\0';
        if (n < max)
            str[n] = (char)ch;
        n++;
    }
    if (ch == EOF && ferror(st->f)) {
        st->read_errno = errno; /* ends the parse; ini_strict_report() reports it */
        return NULL;
    }
    if (ch == EOF && n == 0)
        return NULL;
    st->line++;
    if (n > max || nul) {
        if (n > max)
            ini_strict_error(st, "line too long (at most %zu bytes%s)", max,
                             st->long_line_hint ? st->long_line_hint : "");
        else
            ini_strict_error(st, "NUL byte in line");
        n = 0; /* inih sees a blank line */
    }
    if (n && str[n - 1] == '\r')
        n--;
    if (st->line == 1 && n >= 3 && memcmp(str, "\xEF\xBB\xBF", 3) == 0) {
        memmove(str, str + 3, n - 3); /* a UTF-8 byte order mark */
        n -= 3;
    }
    str[n] = '\0';
    check_line(st, str);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

/* See ini_strict.h. */
int ini_strict_parse(struct ini_strict *st, ini_handler handler, void *user)
{
    return ini_parse_stream(read_line, st, handler, user);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* See ini_strict.h. inih reports syntax errors by line number alone; the reader has usually
 * recorded a better message for the same line, otherwise the message is "syntax error". */
int ini_strict_report(const struct ini_strict *st, int rc, const char *path, char *err,
                      size_t errlen)
{
    if (st->read_errno) {
        seterr(err, errlen, "cannot read %s: %s", path, strerror(st->read_errno));
        return -1;
    }
    if (rc == -2) {
        seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (st->err_line && (rc <= 0 || st->err_line <= rc)) {
        seterr(err, errlen, "%s:%d: %s", path, st->err_line, st->msg);
        return -1;
    }
    if (rc != 0) {
        seterr(err, errlen, "%s:%d: syntax error", path, rc);
        return -1;
    }
    return 0;
}
