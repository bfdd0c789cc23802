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

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/http_parser.h"

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

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const char *headers_for(const char *url)
{
    if (ends_with(url, ".html"))
        return strncmp(url, "/admin/", 7) == 0 ? "Content-Security-Policy: " STATIC_CSP_ADMIN "\r\n"
                                               : "Content-Security-Policy: " STATIC_CSP_PAGE "\r\n";
    if (ends_with(url, ".svg"))
        return "Content-Security-Policy: " STATIC_CSP_SVG "\r\n";
    return "";
}

/* FNV-1a of the content: the ETag and the version a URL may name. */
static void set_version(struct static_file *f)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < f->len; i++)
        h = (h ^ (uint8_t)f->data[i]) * 1099511628211ull;
    snprintf(f->version, sizeof(f->version), "%016llx", (unsigned long long)h);
    snprintf(f->etag, sizeof(f->etag), "\"%s\"", f->version);
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
    f->headers = headers_for(url);
    f->data = data;
    f->len = len;
    set_version(f);
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

static const struct static_file *find_exact(const struct static_files *sf, const char *p,
                                            size_t len);

/* The loaded .js/.css file a quoted reference names (an absolute path, no query), or NULL. */
static const struct static_file *versionable(const struct static_files *sf, const char *p, size_t n)
{
    const struct static_file *f = find_exact(sf, p, n);
    if (!f ||
        !(ends_with(f->path, ".js") || ends_with(f->path, ".mjs") || ends_with(f->path, ".css")))
        return NULL;
    return f;
}

/* Rewrite ="/x.js" and ='/x.css' in an HTML file to carry ?v=<version>, so that the page names
 * exactly the bytes it was tested with and those can be cached for good; the page's own ETag
 * then changes with any of them. */
static void version_references(struct static_files *sf, struct static_file *html)
{
    struct buf out = {0};
    const char *p = html->data, *end = html->data + html->len, *copied = p;
    while ((p = memchr(p, '=', (size_t)(end - p))) && end - p > 3) {
        char q = p[1];
        const char *v = p + 2, *close;
        p++;
        if ((q != '"' && q != '\'') || *v != '/' || !(close = memchr(v, q, (size_t)(end - v))))
            continue;
        const struct static_file *f = versionable(sf, v, (size_t)(close - v));
        if (!f)
            continue;
        buf_append(&out, copied, (size_t)(close - copied));
        buf_printf(&out, "?v=%s", f->version);
        copied = p = close;
    }
    if (!buf_size(&out))
        return;
    buf_append(&out, copied, (size_t)(end - copied));
    xfree((void *)html->data);
    html->len = buf_size(&out);
    html->data = xmalloc(html->len + 1);
    memcpy((char *)html->data, buf_begin(&out), html->len);
    buf_free(&out);
    set_version(html);
}

/* Load root into memory; see the header. */
struct static_files *static_files_load(const char *root)
{
    struct static_files *sf = xcalloc(1, sizeof(*sf));
    walk(sf, root, "", 0);
    for (size_t i = 0; i < sf->n; i++)
        if (ends_with(sf->files[i].path, ".html"))
            version_references(sf, &sf->files[i]);
    return sf;
}

/* See the header. Only the exact v=<version> parameter counts. */
bool static_file_versioned(const struct static_file *f, const char *query, size_t query_len)
{
    char v[sizeof(f->version) + 1];
    if (!query || http_query_param(query, query_len, "v", v, sizeof(v)) < 0)
        return false;
    return strcmp(v, f->version) == 0;
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
