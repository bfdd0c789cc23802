/* ini_strict.h - a strict line reader for inih: physical line numbers and refusals of what
 * inih would accept quietly. Shared by app/config.c and loadtest/load/load_scenario.c.
 *
 * The caller embeds struct ini_strict as the first member of its own parse state, fills in f
 * and on_section, and passes the whole state as inih's user pointer; its key handler casts the
 * pointer back and reports through ini_strict_error(). */
#ifndef TRILEMMA_BASE_INI_STRICT_H
#define TRILEMMA_BASE_INI_STRICT_H

#include <ini.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct ini_strict {
    FILE *f;        /* read by the reader; opened and closed by the caller */
    int line;       /* physical line last handed to inih (1-based) */
    int err_line;   /* line of the first error, 0 = none yet */
    char msg[384];  /* the first error, without the "FILE:LINE: " prefix */
    int read_errno; /* set when reading failed */
    /* Appended to "line too long (at most N bytes" before the ')', or NULL. */
    const char *long_line_hint;
    /* Called for each well-formed section header with the text between the brackets (not
     * NUL-terminated). It refuses unknown sections through ini_strict_error(). */
    void (*on_section)(struct ini_strict *st, const char *name, size_t len);
};

/* Records an error for the current line; the first error wins, later ones are dropped. */
void ini_strict_error(struct ini_strict *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Runs ini_parse_stream() over st->f with the strict reader, calling handler(user, ...) for
 * each key. user is normally st's enclosing state. Returns what ini_parse_stream() returns
 * (0, the first line inih found malformed, or -2 for out of memory); the reader's own errors
 * are in st and are turned into one message by ini_strict_report(). */
int ini_strict_parse(struct ini_strict *st, ini_handler handler, void *user);

/* Turns a parse's outcome into "PATH:LINE: message" (or a read or memory error) in err.
 * Returns 0 when the file parsed cleanly, -1 otherwise. */
int ini_strict_report(const struct ini_strict *st, int rc, const char *path, char *err,
                      size_t errlen);

#endif
