/* redact.h - secrets out of what is logged or shown: a URL's credentials and query values.
 *
 * Base URLs (a provider's, a tool's, DATABASE_URL) may carry credentials in their userinfo
 * (http://user:pass@host/) or in query parameters (?key=...). Whatever prints one goes through
 * url_redact first. */
#ifndef TRILEMMA_BASE_REDACT_H
#define TRILEMMA_BASE_REDACT_H

#include <stddef.h>

/* What replaces a secret. */
#define REDACTED "***"

/* Copy url into out (cap bytes; NUL-terminated whenever cap > 0, cut short if it does not fit)
 * with its userinfo, every query value (a parameter without '=' as a whole) and its fragment
 * each replaced by REDACTED; scheme, host, port, path and query names are kept (see
 * tests/base/test_redact.c for examples). A string without "scheme:" and two slashes is read
 * as starting at the authority (DATABASE_URL-like "user:pw@db:5432/x"). Returns the length of
 * out. */
size_t url_redact(const char *url, char *out, size_t cap);

#endif
