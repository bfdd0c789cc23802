/* json_schema.h - the subset of JSON Schema that tool parameters use: compiled once when the
 * configuration is loaded, then checked against a model's arguments before any call is made.
 * Pure functions over a json_doc; no I/O, no globals.
 *
 * Supported keywords:
 *   type (one name or an array of names: object, string, integer, number, boolean, array, null),
 *   properties, required, additionalProperties (true or false only), items (one schema),
 *   minItems, maxItems, enum (strings, numbers, booleans, null), minimum, maximum,
 *   exclusiveMinimum, exclusiveMaximum (numbers), minLength, maxLength (in code points),
 *   pattern (POSIX extended regex after \d \w \s are spelled out; an ECMA-262 pattern that
 *   regcomp refuses is a load error, not a silent pass).
 * Annotations accepted and ignored: description, title, default, examples, format, $comment.
 * Anything else (oneOf, $ref, patternProperties, ...) is refused at load, so that no constraint
 * a model is shown goes unchecked here. */
#ifndef TRILEMMA_ORCHESTRATOR_JSON_SCHEMA_H
#define TRILEMMA_ORCHESTRATOR_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "stream/json.h"

struct js_schema;

/* Compile the schema at JSON Pointer ptr of the loaded document d. Returns the compiled schema
 * (the caller owns it: js_free), or NULL with a message in err naming the keyword's place
 * inside the schema, e.g. "properties.pincode.minLength: expected a non-negative integer". */
struct js_schema *js_compile(json_doc *d, const char *ptr, char *err, size_t errlen);
void js_free(struct js_schema *s);

/* True if the schema accepts objects and nothing else (the root of tool parameters). */
bool js_is_object(const struct js_schema *s);

/* True if name is one of the schema's top-level properties. */
bool js_has_property(const struct js_schema *s, const char *name);

/* True if name is in the schema's top-level "required". */
bool js_is_required(const struct js_schema *s, const char *name);

/* The top-level property names in declaration order (for building query strings): count and
 * the i-th name (NULL past the end). */
size_t js_property_count(const struct js_schema *s);
const char *js_property_name(const struct js_schema *s, size_t i);

/* Check the value at ptr of d against s. Returns 0, or -EINVAL with a message in err naming the
 * argument by its path ("pincode", "filters.brand", "ids[2]"; "arguments" for the root), e.g.
 * "pincode: expected a string matching ^[0-9]{6}$". Only the first violation is reported. */
int js_validate(const struct js_schema *s, json_doc *d, const char *ptr, char *err, size_t errlen);

#endif
