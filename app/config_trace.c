/* config_trace.c - the [trace] section as the trace module's configuration (config_trace). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/config.h"
#include "trace/redact.h"

/* "0", "0.25", "1": a decimal number 0..1. */
static int parse_rate(const char *s, double *out)
{
    char *end;
    if (!*s || strspn(s, "0123456789.") != strlen(s))
        return -1;
    double v = strtod(s, &end);
    if (*end || v < 0 || v > 1)
        return -1;
    *out = v;
    return 0;
}

/* "TYPE:MS,TYPE:MS" into c's targets. */
static int parse_targets(const char *s, struct trace_conf *c)
{
    c->n_ttft_targets = 0;
    while (*s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        size_t w = strcspn(s, ":, ");
        if (!w || s[w] != ':' || w >= sizeof(c->ttft_targets[0].query_type) ||
            c->n_ttft_targets == TRACE_MAX_TTFT_TARGETS)
            return -1;
        char *end;
        unsigned long ms = strtoul(s + w + 1, &end, 10);
        if (end == s + w + 1 || ms < 1 || ms > 3600000 || (*end && *end != ',' && *end != ' '))
            return -1;
        snprintf(c->ttft_targets[c->n_ttft_targets].query_type,
                 sizeof(c->ttft_targets[0].query_type), "%.*s", (int)w, s);
        c->ttft_targets[c->n_ttft_targets++].ms = (uint32_t)ms;
        s = end;
    }
    return 0;
}

static int bad(char *err, size_t errlen, const char *key, const char *what)
{
    snprintf(err, errlen, "bad value for '%s' in [trace]: %s", key, what);
    return -1;
}

/* The [trace] part of c; see config.h. */
int config_trace(const struct config *c, struct trace_conf *out, char *err, size_t errlen)
{
    trace_conf_defaults(out);
    if (!strcmp(c->trace_capture, "full"))
        out->capture = TRACE_FULL;
    else if (!strcmp(c->trace_capture, "metadata"))
        out->capture = TRACE_METADATA;
    else if (!strcmp(c->trace_capture, "off"))
        out->capture = TRACE_OFF;
    else
        return bad(err, errlen, "capture", "expected full, metadata or off");
    if (parse_rate(c->trace_sample_rate, &out->sample_rate) < 0)
        return bad(err, errlen, "sample_rate", "expected a number from 0 to 1");
    if (redact_parse(c->trace_redact, &out->redact) < 0)
        return bad(err, errlen, "redact", "expected a list of card, phone, email, or none");
    const char *ep = c->trace_otlp_endpoint;
    if (ep[0] && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return bad(err, errlen, "otlp_endpoint", "expected an http:// or https:// URL");
    if (parse_targets(c->trace_ttft_targets, out) < 0)
        return bad(err, errlen, "ttft_targets",
                   "expected TYPE:MS,... (at most 12, 1..3600000 ms each)");
    out->retention_days = c->trace_retention_days;
    out->otlp_endpoint = ep;
    out->otlp_queue_spans = c->trace_otlp_queue_spans;
    out->ttft_default_ms = c->trace_ttft_target_ms;
    out->cost_outlier_factor = c->trace_cost_outlier_factor;
    return 0;
}
