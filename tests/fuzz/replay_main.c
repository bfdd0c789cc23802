/* replay_main.c - run a fuzz target over files without libFuzzer: each argument is a file or a
 * directory (its regular files, not recursive, dot files skipped). This is how the checked-in
 * corpus runs under ctest (label fuzz-replay) in every build, sanitizers or not. Exits 1 if no
 * input was found, so that a wrong corpus path does not pass silently. */
#include "base/mem.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole file; returns 0 or -1. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int ret = -1;

    if (!f) {
        perror(path);
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0)
        goto out_close;
    size_t n = (size_t)st.st_size;
    uint8_t *data = xmalloc(n ? n : 1);
    if (fread(data, 1, n, f) == n) {
        LLVMFuzzerTestOneInput(data, n);
        ret = 0;
    }
    xfree(data);
out_close:
    fclose(f);
    if (ret)
        fprintf(stderr, "%s: cannot read\n", path);
    return ret;
}

/* Run every regular file of a directory; returns the count, or -1 on a read error. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long count = 0;
    char path[4096];

    if (!d) {
        perror(dir);
        return -1;
    }
    while ((e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (run_file(path) != 0) {
            count = -1;
            break;
        }
        count++;
    }
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        long n;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) == 0 ? 1 : -1;
        if (n < 0)
            return 1;
        total += n;
    }
    printf("replayed %ld inputs\n", total);
    return total > 0 ? 0 : 1;
}
