/* static_files.h - the files under web_root, loaded into memory once at start and served from
 * there: no file I/O on a worker, and no path can reach outside the table (no traversal). */
#ifndef TRILEMMA_NET_STATIC_FILES_H
#define TRILEMMA_NET_STATIC_FILES_H

#include <stddef.h>

struct static_files;

struct static_file {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const char *data;
    size_t len;
    char etag[24];
};

/* Load every regular file below root (depth <= 8, files <= 8 MiB, at most 1024). A missing root
 * gives an empty table. Returns NULL only on allocation failure. */
struct static_files *static_files_load(const char *root);
void static_files_free(struct static_files *sf);
size_t static_files_count(const struct static_files *sf);

/* Look up a request path (no query). "/" maps to "/index.html", "/dir/" to "/dir/index.html".
 * Returns NULL when absent. */
const struct static_file *static_files_find(const struct static_files *sf, const char *path,
                                            size_t len);

#endif
