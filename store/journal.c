/* journal.c - spill journal files: opening and locking, finding the valid end, reading records
 * back, and appending on the ring.
 *
 * Reads are plain pread(2) calls: the journal is read back right after it was written (page
 * cache) and in bounded pieces, so a worker never waits on it long. Appends wait for the disk
 * (fdatasync), so they go through the ring: the write, then on its completion the fdatasync (two
 * steps rather than a linked pair, so the pair can never be split across submissions). */
#include "store/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "store/record.h"
#include "store/store.h"

/* ---- opening ---- */

/* The journal folder itself is private (0700: it holds conversations), but the folders created
 * above it are ordinary ones (0755, less the umask): the default .run/journal shares .run with
 * scripts/run.sh's PostgreSQL cluster, which runs as another user and must pass through .run. */
static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Read one record at off (not past fend) into out. Returns its length, 0 at a torn or corrupt
 * record, -errno on a read error. */
static long read_one(int fd, uint64_t off, uint64_t fend, struct buf *out)
{
    char hdr[REC_HEADER];
    if (fend - off < REC_HEADER)
        return 0;
    ssize_t r = pread(fd, hdr, REC_HEADER, (off_t)off);
    if (r < 0)
        return -errno;
    if (r != REC_HEADER)
        return 0;
    uint32_t len = (uint32_t)(uint8_t)hdr[4] | (uint32_t)(uint8_t)hdr[5] << 8 |
                   (uint32_t)(uint8_t)hdr[6] << 16 | (uint32_t)(uint8_t)hdr[7] << 24;
    if (len > REC_MAX_PAYLOAD || fend - off < REC_HEADER + (uint64_t)len)
        return 0;
    char *dst = buf_reserve(out, REC_HEADER + (size_t)len);
    memcpy(dst, hdr, REC_HEADER);
    r = pread(fd, dst + REC_HEADER, len, (off_t)(off + REC_HEADER));
    if (r < 0)
        return -errno;
    if ((uint32_t)r != len || rec_check(dst, REC_HEADER + (size_t)len) <= 0)
        return 0;
    buf_commit(out, REC_HEADER + (size_t)len);
    return (long)(REC_HEADER + len);
}

/* The end of the valid records of an open file. */
static int scan_valid(int fd, uint64_t *valid, uint64_t *fsize)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -errno;
    *fsize = (uint64_t)sb.st_size;
    struct buf b = {0};
    uint64_t off = 0;
    long n;
    while ((n = read_one(fd, off, *fsize, &b)) > 0) {
        off += (uint64_t)n;
        buf_reset(&b);
    }
    buf_free(&b);
    if (n < 0)
        return (int)n;
    *valid = off;
    return 0;
}

static struct journal *journal_new(int fd, const char *path)
{
    struct journal *j = xcalloc(1, sizeof(*j));
    j->fd = fd;
    j->path = xstrdup(path);
    return j;
}

/* Open this process's journal for a worker; see journal.h. */
struct journal *journal_open_own(const char *dir, int worker, char *err, size_t errlen)
{
    char path[PATH_MAX];
    uint64_t valid, fsize;
    int ret = mkdir_p(dir);
    if (ret < 0) {
        snprintf(err, errlen, "cannot create journal folder %s: %s", dir, strerror(-ret));
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/%ld-w%d.journal", dir, (long)getpid(), worker);
    int fd = -1;
    /* Between our open and our lock another process adopting orphans may lock the new, empty
     * file and unlink it: a journal without a name would be lost after a crash. So check, under
     * the lock, that the path still names this file, and start again if it does not. */
    for (int tries = 0;; tries++) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open journal %s: %s", path, strerror(errno));
            return NULL;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            snprintf(err, errlen, "cannot lock journal %s: %s", path, strerror(errno));
            goto out_close;
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && held.st_nlink > 0 && stat(path, &named) == 0 &&
            held.st_ino == named.st_ino && held.st_dev == named.st_dev)
            break;
        close(fd);
        if (tries == 8) {
            snprintf(err, errlen, "journal %s keeps disappearing", path);
            return NULL;
        }
    }
    /* A file of ours can exist already only if an earlier process had our pid: keep its valid
     * records (they are replayed like ours) and cut the torn tail so appends follow them. */
    ret = scan_valid(fd, &valid, &fsize);
    if (ret < 0 || (valid < fsize && ftruncate(fd, (off_t)valid) < 0)) {
        snprintf(err, errlen, "cannot read journal %s: %s", path, strerror(ret < 0 ? -ret : errno));
        goto out_close;
    }
    struct journal *j = journal_new(fd, path);
    j->size = valid;
    j->dropped = fsize - valid;
    return j;

out_close:
    close(fd);
    return NULL;
}

/* ---- adopting orphans ---- */

enum adopt { ADOPT_NONE, ADOPT_OK, ADOPT_FOREIGN };

static uint64_t g_foreign; /* atomic: foreign orphans at the last complete look */

/* Files already reported as foreign or unverifiable, so that each is logged once per process
 * however often the workers look (a small set: a journal folder holds a few files). */
static struct {
    pthread_mutex_t mu;
    dev_t dev[64];
    ino_t ino[64];
    unsigned n;
} g_reported = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool first_report(const struct stat *sb)
{
    bool first = true;
    pthread_mutex_lock(&g_reported.mu);
    for (unsigned i = 0; i < g_reported.n && first; i++)
        first = !(g_reported.dev[i] == sb->st_dev && g_reported.ino[i] == sb->st_ino);
    if (first && g_reported.n < 64) {
        g_reported.dev[g_reported.n] = sb->st_dev;
        g_reported.ino[g_reported.n++] = sb->st_ino;
    }
    pthread_mutex_unlock(&g_reported.mu);
    return first;
}

/* See journal.h. */
uint64_t journal_foreign_count(void)
{
    return __atomic_load_n(&g_foreign, __ATOMIC_RELAXED);
}

/* Does the journal's first record belong to want? ADOPT_OK (yes, or it names no database),
 * ADOPT_FOREIGN (another database's), ADOPT_NONE (unreadable, or want unknown: leave it). */
static enum adopt check_owner(int fd, uint64_t size, const char *path, const struct stat *sb,
                              const struct store_db_id *want)
{
    struct buf b = {0};
    uint64_t sys = 0;
    char name[64] = "";
    long n = read_one(fd, 0, size, &b);
    int has = n > 0 ? rec_identity(buf_begin(&b), (size_t)n, &sys, name, sizeof(name)) : -1;
    buf_free(&b);
    if (has < 0)
        return ADOPT_NONE;
    if (has == 0)
        return ADOPT_OK; /* written before journals named their database: replayed as before */
    bool known = want && want->system_id;
    if (known && sys == want->system_id && strcmp(name, want->name) == 0)
        return ADOPT_OK;
    if (first_report(sb)) {
        if (known)
            log_warn("journal %s belongs to another database (system %llu, database \"%s\"; this "
                     "is %llu, \"%s\"): left alone",
                     path, (unsigned long long)sys, name, (unsigned long long)want->system_id,
                     want->name);
        else
            log_warn("journal %s belongs to database %llu \"%s\" and this process does not know "
                     "its own yet: left alone",
                     path, (unsigned long long)sys, name);
    }
    return known ? ADOPT_FOREIGN : ADOPT_NONE;
}

/* Lock path and, if it is an orphan of want's database (check) with records, open it into *out
 * (out NULL: only look). */
static enum adopt try_adopt(const char *path, const struct store_db_id *want, bool check,
                            struct journal **out)
{
    uint64_t valid, fsize;
    struct stat sb;
    enum adopt res = ADOPT_NONE;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return ADOPT_NONE;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &sb) < 0 || sb.st_nlink == 0)
        goto out_close; /* alive, or already replayed and deleted by someone else */
    if (scan_valid(fd, &valid, &fsize) < 0)
        goto out_close;
    if (check && valid && (res = check_owner(fd, valid, path, &sb, want)) != ADOPT_OK)
        goto out_close; /* closing drops the lock: the file stays as it was */
    res = ADOPT_NONE;
    if (!out)
        goto out_close;
    if (valid == 0) {
        if (fsize)
            log_warn("journal %s: %llu bytes of torn or corrupt records ignored", path,
                     (unsigned long long)fsize);
        unlink(path);
        goto out_close;
    }
    struct journal *j = journal_new(fd, path);
    j->size = valid;
    j->dropped = fsize - valid;
    if (j->dropped)
        log_warn("journal %s: %llu bytes of torn or corrupt tail ignored", path,
                 (unsigned long long)j->dropped);
    *out = j;
    return ADOPT_OK;

out_close:
    close(fd);
    return res;
}

/* The next orphan of dir (see journal.h). With check, the look goes on after the one adopted
 * (locking each other orphan for a moment) to count the foreign ones. */
static struct journal *adopt(const char *dir, const char *skip, const struct store_db_id *want,
                             bool check)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct journal *j = NULL;
    struct dirent *e;
    char path[PATH_MAX];
    uint64_t foreign = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 8 || strcmp(e->d_name + n - 8, ".journal") != 0)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if (skip && strcmp(path, skip) == 0)
            continue;
        if (!check && j)
            break;
        if (try_adopt(path, want, check, j ? NULL : &j) == ADOPT_FOREIGN)
            foreign++;
    }
    closedir(d);
    if (check)
        __atomic_store_n(&g_foreign, foreign, __ATOMIC_RELAXED);
    return j;
}

/* Lock and open the next orphan, any database's; see journal.h. */
struct journal *journal_adopt(const char *dir, const char *skip)
{
    return adopt(dir, skip, NULL, false);
}

/* See journal.h. */
struct journal *journal_adopt_for(const char *dir, const char *skip, const struct store_db_id *want)
{
    return adopt(dir, skip, want, true);
}

/* Close the journal (and delete it first if asked, while the lock is held). */
void journal_close(struct journal *j, bool unlink_it)
{
    if (!j)
        return;
    if (unlink_it && unlink(j->path) < 0)
        log_warn("cannot delete journal %s: %s", j->path, strerror(errno));
    close(j->fd);
    xfree(j->path);
    xfree(j);
}

/* Empty the journal. Not fsync'd: if the truncation is lost in a crash, the records are
 * replayed again, which inserts nothing twice. */
int journal_truncate(struct journal *j)
{
    if (ftruncate(j->fd, 0) < 0)
        return -errno;
    j->size = 0;
    j->replay_off = 0;
    return 0;
}

/* Read records back; see journal.h. */
int journal_read(struct journal *j, uint64_t off, uint32_t max_records, size_t max_bytes,
                 struct buf *out, uint64_t *end)
{
    int n = 0;
    size_t bytes = 0;
    while (off < j->size && (uint32_t)n < max_records && bytes < max_bytes) {
        long r = read_one(j->fd, off, j->size, out);
        if (r < 0)
            return (int)r;
        if (r == 0)
            break;
        off += (uint64_t)r;
        bytes += (size_t)r;
        n++;
    }
    *end = off;
    return n;
}

/* Length of the first of the records laid back to back in p. */
size_t journal_rec_len(const char *p, size_t n)
{
    long r = rec_check(p, n);
    return r > 0 ? (size_t)r : n;
}

/* ---- appending ---- */

static void append_finish(struct journal_append *a, int result)
{
    struct journal *j = a->j;
    if (result == 0) {
        j->size += a->bytes;
    } else if (ftruncate(j->fd, (off_t)j->size) < 0) {
        log_error("journal %s: cannot cut off a failed append: %s", j->path, strerror(errno));
    }
    a->cqes_left = 0;
    a->fn(a->ctx, result);
}

static void on_append_cqe(struct loop *l, struct io_uring_cqe *cqe, void *ctx)
{
    (void)l;
    struct journal_append *a = ctx;
    if (!a || loop_ud_gen(cqe->user_data) != a->gen || a->cqes_left == 0)
        return;
    if (loop_ud_idx(cqe->user_data) == 0) { /* the write */
        if (cqe->res < 0 || (uint64_t)cqe->res != a->bytes) {
            append_finish(a, cqe->res < 0 ? cqe->res : -EIO);
            return;
        }
        struct io_uring_sqe *sqe = loop_sqe(a->l, loop_ud(a->op, a->gen, 1));
        io_uring_prep_fsync(sqe, a->j->fd, IORING_FSYNC_DATASYNC);
        return;
    }
    append_finish(a, cqe->res < 0 ? cqe->res : 0); /* the fdatasync */
}

/* Set up an appender on a loop; see journal.h. */
void journal_append_init(struct journal_append *a, struct loop *l, uint8_t op)
{
    memset(a, 0, sizeof(*a));
    a->l = l;
    a->op = op;
    loop_set_handler(l, op, on_append_cqe, a);
}

/* Unregister the appender. An append still in flight completes unheard. */
void journal_append_fini(struct journal_append *a)
{
    if (a->l)
        loop_set_handler(a->l, a->op, NULL, NULL);
    a->cqes_left = 0;
}

/* Start an append; see journal.h. */
void journal_append_start(struct journal_append *a, struct journal *j, const struct iovec *iov,
                          unsigned n, journal_done_fn fn, void *ctx)
{
    a->j = j;
    a->fn = fn;
    a->ctx = ctx;
    a->bytes = 0;
    for (unsigned i = 0; i < n; i++)
        a->bytes += iov[i].iov_len;
    a->gen = (a->gen + 1) & 0xFFFFFF;
    a->cqes_left = 1;
    struct io_uring_sqe *sqe = loop_sqe(a->l, loop_ud(a->op, a->gen, 0));
    io_uring_prep_writev(sqe, j->fd, iov, n, j->size);
}

/* Blocking append (shutdown only); see journal.h. */
int journal_append_sync(struct journal *j, const struct iovec *iov, unsigned n)
{
    uint64_t bytes = 0;
    for (unsigned i = 0; i < n; i++)
        bytes += iov[i].iov_len;
    ssize_t w = pwritev(j->fd, iov, (int)n, (off_t)j->size);
    if (w < 0 || (uint64_t)w != bytes || fdatasync(j->fd) < 0) {
        int err = w < 0 ? -errno : -EIO;
        if (ftruncate(j->fd, (off_t)j->size) < 0)
            err = -errno;
        return err;
    }
    j->size += bytes;
    return 0;
}
