/* filemap-test: the mapped data path on the build host's own file system. A target grows buffer by buffer
 * and holds what was stored; a source truncated under its mapping gives -EFAULT from the guarded copy (the
 * SIGBUS is caught, the process keeps running and can copy again); pipes and character devices are not
 * mapped (the callers' fallback). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filemap.h"

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "filemap-test: FAIL: " __VA_ARGS__); \
            fprintf(stderr, "\n");                         \
            failures++;                                    \
        }                                                  \
    } while (0)

enum { SIZE = 3 * 1024 * 1024 + 123, CHUNK = 1024 * 1024 };

int main(void)
{
    setenv("VMGMT_GUEST_MAP", "get,put", 1); /* both directions here; the default maps puts only */
    char dir[] = "/tmp/filemap-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/f", dir);
    uint8_t *data = malloc(SIZE), *back = malloc(SIZE);
    for (uint32_t i = 0; i < SIZE; i++)
        data[i] = (uint8_t)(i * 7 + 3);

    /* Target: grows with each store, in file order, to exactly what was stored. */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct filemap m;
    int why = 0;
    CHECK(filemap_open_target(&m, fd, SIZE, &why), "a regular file is mapped as a target (errno %d)", why);
    for (uint32_t off = 0; off < SIZE; off += CHUNK) {
        uint32_t n = SIZE - off < CHUNK ? SIZE - off : CHUNK;
        CHECK(filemap_store(&m, fd, off, data + off, n) == 0, "store at %u", off);
        struct stat st;
        fstat(fd, &st);
        CHECK((uint64_t)st.st_size == off + n, "size after the store at %u is %lld, not %u", off, (long long)st.st_size, off + n);
    }
    CHECK(filemap_store(&m, fd, SIZE - 1, data, 2) == -EINVAL, "a store past the mapped size is refused");
    CHECK(ftruncate(fd, CHUNK) == 0, "ftruncate");
    CHECK(filemap_store(&m, fd, 2 * CHUNK, data, 4096) == -EFAULT, "a store beyond a target cut under it is -EFAULT (no hole of zeros)");
    CHECK(filemap_store(&m, fd, CHUNK, data + CHUNK, SIZE - CHUNK) == 0, "the store right after the cut end works");
    filemap_close(&m);
    CHECK(pread(fd, back, SIZE, 0) == SIZE && memcmp(back, data, SIZE) == 0, "the target holds what was stored");

    /* Source: a truncation under the mapping is -EFAULT, twice (the guard is re-armed), then a good copy works. */
    CHECK(filemap_open_source(&m, fd, SIZE, &why), "a regular file is mapped as a source (errno %d)", why);
    CHECK(filemap_load(&m, 0, back, CHUNK) == 0 && memcmp(back, data, CHUNK) == 0, "load of the first chunk");
    CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
    CHECK(filemap_load(&m, 2 * CHUNK, back, CHUNK) == -EFAULT, "a load past the truncated end is -EFAULT");
    CHECK(filemap_load(&m, CHUNK, back, CHUNK) == -EFAULT, "a second load past the end is -EFAULT too");
    CHECK(filemap_load(&m, 0, back, 4096) == 0 && memcmp(back, data, 4096) == 0, "a load of what is left still works");
    filemap_close(&m);
    close(fd);

    /* VMGMT_GUEST_MAP=none: nothing is mapped (ENOTSUP), the callers use read()/write(). */
    setenv("VMGMT_GUEST_MAP", "none", 1);
    fd = open(path, O_RDWR);
    CHECK(!filemap_open_target(&m, fd, SIZE, &why) && why == ENOTSUP, "VMGMT_GUEST_MAP=none maps no target (errno %d)", why);
    CHECK(!filemap_open_source(&m, fd, 4096, &why) && why == ENOTSUP, "VMGMT_GUEST_MAP=none maps no source (errno %d)", why);
    close(fd);
    setenv("VMGMT_GUEST_MAP", "get,put", 1);

    /* Not mapped: a pipe, /dev/null, an empty file. */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    CHECK(!filemap_open_target(&m, p[1], SIZE, &why) && why == ENODEV, "a pipe is not mapped (errno %d)", why);
    CHECK(m.base == NULL, "an unmapped filemap has no base");
    int null = open("/dev/null", O_RDWR);
    CHECK(!filemap_open_target(&m, null, SIZE, &why) && why == ENODEV, "/dev/null is not mapped (errno %d)", why);
    fd = open(path, O_RDWR | O_TRUNC);
    CHECK(!filemap_open_source(&m, fd, 0, &why) && why == EINVAL, "an empty file is not mapped (errno %d)", why);
    close(fd);
    close(null);
    close(p[0]);
    close(p[1]);
    unlink(path);
    rmdir(dir);
    free(data);
    free(back);
    if (failures)
        return 1;
    printf("filemap: mapped stores and loads, SIGBUS turned into -EFAULT, pipes and devices left to read()/write()\n");
    return 0;
}
