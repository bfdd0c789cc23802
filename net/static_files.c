/* static_files.c - an in-memory table of web_root, read once with plain blocking I/O at start
 * (before the workers run), then looked up by exact path. */
#include "net/static_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

enum { MAX_FILES = 1024, MAX_DEPTH = 8, MAX_FILE_BYTES = 8 << 20 };

struct static_files {
    struct static_file files[MAX_FILES];
    size_t n;
};

static const char *mime_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static char *read_file(const char *fs_path, size_t *len)
{
    int fd = open(fs_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *data = NULL;
    if (fstat(fd, &st) < 0 || st.st_size > MAX_FILE_BYTES)
        goto out_close;
    data = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
        if (r <= 0) {
            xfree(data);
            data = NULL;
            goto out_close;
        }
        got += (size_t)r;
    }
    *len = got;
out_close:
    close(fd);
    return data;
}

static void add_file(struct static_files *sf, const char *fs_path, const char *url)
{
    if (sf->n == MAX_FILES) {
        log_warn("web_root: more than %d files, ignoring %s", MAX_FILES, url);
        return;
    }
    size_t len = 0;
    char *data = read_file(fs_path, &len);
    if (!data) {
        log_warn("web_root: cannot read %s", fs_path);
        return;
    }
    struct static_file *f = &sf->files[sf->n++];
    f->path = xstrdup(url);
    f->type = mime_type(url);
    f->data = data;
    f->len = len;
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the content as a strong-enough ETag */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)data[i]) * 1099511628211ull;
    snprintf(f->etag, sizeof(f->etag), "\"%016llx\"", (unsigned long long)h);
}

static void walk(struct static_files *sf, const char *dir, const char *url, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') /* also skips dotfiles */
            continue;
        char fs[4096], u[2048];
        if (snprintf(fs, sizeof(fs), "%s/%s", dir, e->d_name) >= (int)sizeof(fs) ||
            snprintf(u, sizeof(u), "%s/%s", url, e->d_name) >= (int)sizeof(u))
            continue;
        struct stat st;
        if (stat(fs, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH)
            walk(sf, fs, u, depth + 1);
        else if (S_ISREG(st.st_mode))
            add_file(sf, fs, u);
    }
    closedir(d);
}

/* Load root into memory; see the header. */
struct static_files *static_files_load(const char *root)
{
    struct static_files *sf = xcalloc(1, sizeof(*sf));
    walk(sf, root, "", 0);
    return sf;
}

void static_files_free(struct static_files *sf)
{
    if (!sf)
        return;
    for (size_t i = 0; i < sf->n; i++) {
        xfree((void *)sf->files[i].path);
        xfree((void *)sf->files[i].data);
    }
    xfree(sf);
}

size_t static_files_count(const struct static_files *sf)
{
    return sf->n;
}

static const struct static_file *find_exact(const struct static_files *sf, const char *p,
                                            size_t len)
{
    for (size_t i = 0; i < sf->n; i++)
        if (strlen(sf->files[i].path) == len && memcmp(sf->files[i].path, p, len) == 0)
            return &sf->files[i];
    return NULL;
}

/* Exact lookup, with "index.html" appended to paths ending in '/'. */
const struct static_file *static_files_find(const struct static_files *sf, const char *path,
                                            size_t len)
{
    if (len == 0 || path[0] != '/')
        return NULL;
    if (path[len - 1] != '/')
        return find_exact(sf, path, len);
    char p[2048];
    if (len + sizeof("index.html") > sizeof(p))
        return NULL;
    memcpy(p, path, len);
    memcpy(p + len, "index.html", sizeof("index.html"));
    return find_exact(sf, p, len + sizeof("index.html") - 1);
}
