/* api.h - the read API over HTTP (JSON), for the widget, the operator pages and scripts:
 *
 *   GET /v1/conversations/{id}          messages and turns with usage and cost
 *   GET /v1/conversations/{id}/ledger   the cost lines of every turn
 *   GET /v1/costs?from=&to=&group_by=model|day|conversation
 *   GET /v1/costs/provisioned?from=&to=&deployment=   the hourly provisioned price per turn
 *   GET /v1/turns?...                   search turns (api_admin.c, the debugging dashboard)
 *   POST /v1/golden                     a turn into the golden set (api_admin.c)
 *
 * Every request needs "Authorization: Bearer <TRILEMMA_ADMIN_TOKEN>" (compared in constant
 * time); without a configured token the API is off (404). 401 without a valid token, 404 for
 * unknown ids, 400 with a message for bad parameters, 503 when the database is away. Answers
 * are produced asynchronously on the worker's reader connection (conn_http_defer). */
#ifndef TRILEMMA_STORE_API_H
#define TRILEMMA_STORE_API_H

#include <stdbool.h>

#include "net/http_parser.h"
#include "net/server.h"

struct store;

/* The largest request body the API takes (POST /v1/golden); net/ answers 413 to a larger one. */
#define STORE_API_MAX_BODY 16384

/* Serve req if its path is under /v1/; returns false for any other path. body[0..len) is the
 * request's body (len 0 without one), borrowed for the call. st may be NULL (no database:
 * 503). */
bool store_api_request(struct store *st, struct conn *c, const struct http_request *req,
                       const char *body, size_t len, const char *admin_token);

/* The client of a deferred answer went away: drop the pending read for c. */
void store_api_abort(struct store *st, struct conn *c);

#endif
