/* slate.h - the products a search or product tool returned, as the client's product cards
 * (the `products` event of docs/protocol.md) and as references for follow-up questions.
 *
 * A commerce API's result is read leniently, by the shapes such APIs use: the array at
 * "results", "items" or "products" (or the body itself when it is an array, or one product
 * object); per product "id" (or "sku"), "title" (or "name"), "brand", "price" (a number, or an
 * object with "value"/"amount"), "currency", "rating", "image" (or "image_url", "thumbnail"), and
 * up to three specs from "key_specs" (strings) or "specs" (an object: "key: value" texts). A
 * product without id or title is skipped. Pure functions. */
#ifndef TRILEMMA_ORCHESTRATOR_SLATE_H
#define TRILEMMA_ORCHESTRATOR_SLATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "stream/json.h"

#define SLATE_MAX 10

struct slate_item {
    char id[64];
    char title[160];
    char brand[64];
    int64_t price_micros; /* -1: unknown */
    char currency[8];
    double rating; /* < 0: unknown */
    char image[256];
    char specs[3][64];
    int n_specs;
};

struct slate {
    struct slate_item items[SLATE_MAX];
    int n;
};

/* Add the products of one tool result (JSON text) to s, at most max in all and none twice (by
 * id). An image path relative to the API's root ("/images/1.svg") is made absolute with base_url
 * (the tool's, NULL = keep it): the client resolves relative paths against the chat server.
 * d is scratch. Returns how many were added (0 when the text is no product result). */
int slate_add_result(struct slate *s, json_doc *d, const char *json, size_t len, int max,
                     const char *base_url);

/* Append the `products` event's items array (JSON text) for s to out. */
void slate_to_json(const struct slate *s, struct buf *out);

#endif
