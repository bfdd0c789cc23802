/* static_files.h - the files under web_root, loaded into memory once at start and served from
 * there: no file I/O on a worker, and no path can reach outside the table (no traversal). */
#ifndef TRILEMMA_NET_STATIC_FILES_H
#define TRILEMMA_NET_STATIC_FILES_H

#include <stdbool.h>
#include <stddef.h>

struct static_files;

struct static_file {
    const char *path;    /* "/index.html" */
    const char *type;    /* Content-Type */
    const char *headers; /* extra header lines ("Content-Security-Policy: ...\r\n") or "" */
    const char *data;
    size_t len;
    char etag[24];    /* "\"<version>\"" */
    char version[17]; /* 16 hex digits of the content hash: /widget.js?v=<version> */
};

/* The policies of what web_root holds (docs/net.md, "Static files"): the demo page may load
 * product pictures from any http(s) host (the catalog's) and talk to a WebSocket; the admin
 * pages (/admin/) only to their own origin; an SVG is a picture, never a document that runs
 * script. */
#define STATIC_CSP_PAGE                                                                            \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: http:; "       \
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "        \
    "frame-ancestors 'none'"
#define STATIC_CSP_ADMIN                                                                           \
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "               \
    "form-action 'self'; frame-ancestors 'none'"
#define STATIC_CSP_SVG "default-src 'none'; style-src 'unsafe-inline'; sandbox"

/* Load every regular file below root (depth <= 8, files <= 8 MiB, at most 1024). A missing root
 * gives an empty table. In HTML files, a quoted absolute reference to a loaded .js or .css file
 * ("/widget.js") is rewritten to carry its version ("/widget.js?v=<version>"), which
 * static_file_versioned recognises. Returns NULL only on allocation failure. */
struct static_files *static_files_load(const char *root);
void static_files_free(struct static_files *sf);
size_t static_files_count(const struct static_files *sf);

/* Look up a request path (no query). "/" maps to "/index.html", "/dir/" to "/dir/index.html".
 * Returns NULL when absent. */
const struct static_file *static_files_find(const struct static_files *sf, const char *path,
                                            size_t len);

/* The request's query names the file's current version (v=<version>): the answer may be cached
 * for good. */
bool static_file_versioned(const struct static_file *f, const char *query, size_t query_len);

#endif
