#include "filemap.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* volatile, and fenced around the copy: the compiler knows memcpy does not read it and would otherwise drop
 * the store that arms the guard. */
static __thread sigjmp_buf *volatile filemap_guard;

/* SIGBUS inside a guarded copy jumps back to it; anywhere else it is fatal as usual. */
static void filemap_on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    (void)info;
    (void)uctx;
    sigjmp_buf *guard = filemap_guard;
    if (guard) {
        filemap_guard = NULL;
        siglongjmp(*guard, 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void filemap_install_handler(void)
{
    static bool installed;
    if (installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = filemap_on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    installed = true;
}

int filemap_guarded_copy(void *dst, const void *src, size_t length)
{
    filemap_install_handler();
    sigjmp_buf env;
    if (sigsetjmp(env, 1)) {
        return -EFAULT; /* the handler cleared the guard */
    }
    filemap_guard = &env;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    memcpy(dst, src, length);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    filemap_guard = NULL;
    return 0;
}

/* VMGMT_GUEST_MAP: which directions map their local file ("get", "put", "get,put", "none"); default
 * FILEMAP_DEFAULT_DIRECTIONS. For measuring one path against the other in the same guest. */
static bool filemap_wanted(const char *direction)
{
    const char *v = getenv("VMGMT_GUEST_MAP");
    if (!v)
        v = FILEMAP_DEFAULT_DIRECTIONS;
    return strstr(v, direction) != NULL;
}

static bool filemap_map(struct filemap *m, int fd, uint64_t size, int prot, int *why)
{
    *m = (struct filemap){ 0 };
    if (!filemap_wanted(prot & PROT_WRITE ? "get" : "put")) {
        *why = ENOTSUP;
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *why = errno;
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = ENODEV;
        return false;
    }
    if (size == 0 || size > (uint64_t)SIZE_MAX / 2) {
        *why = EINVAL;
        return false;
    }
    void *p = mmap(NULL, (size_t)size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *why = errno;
        return false;
    }
    m->base = p;
    m->length = size;
    m->huge = madvise(p, (size_t)size, MADV_HUGEPAGE) == 0;
    return true;
}

bool filemap_open_target(struct filemap *m, int fd, uint64_t size, int *why)
{
    if (!filemap_map(m, fd, size, PROT_READ | PROT_WRITE, why))
        return false;
    m->can_fallocate = true;
    return true;
}

bool filemap_open_source(struct filemap *m, int fd, uint64_t size, int *why)
{
    if (!filemap_map(m, fd, size, PROT_READ, why))
        return false;
    madvise(m->base, (size_t)size, MADV_SEQUENTIAL);
    return true;
}

/* Grows the target to end before [offset, end) is copied in. -EFAULT when it is shorter than offset: someone
 * truncated what was already stored (growing it again would leave a hole of zeros in the copy). */
static int filemap_extend(struct filemap *m, int fd, uint64_t offset, uint64_t end)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size < offset)
        return -EFAULT;
    if ((uint64_t)st.st_size >= end)
        return 0;
    if (m->can_fallocate) {
        if (fallocate(fd, 0, st.st_size, (off_t)(end - (uint64_t)st.st_size)) == 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != ENOSYS)
            return -errno;
        m->can_fallocate = false;
    }
    return ftruncate(fd, (off_t)end) < 0 ? -errno : 0;
}

/* Fills the page tables of [p, p + length) in one call instead of a fault per page (Linux >= 5.14; a
 * kernel without it, or a range it cannot fill, is left to fault as usual: the guarded copy decides). */
static void filemap_populate(uint8_t *p, uint32_t length, int advice)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = (uintptr_t)p & ~(page - 1), to = ((uintptr_t)p + length + page - 1) & ~(page - 1);
    madvise((void *)from, to - from, advice);
}

int filemap_store(struct filemap *m, int fd, uint64_t offset, const uint8_t *src, uint32_t length)
{
    if (offset > m->length || length > m->length - offset)
        return -EINVAL;
    int err = filemap_extend(m, fd, offset, offset + length);
    if (err)
        return err;
    uint8_t *dst = m->base + offset;
    filemap_populate(dst, length, MADV_POPULATE_WRITE);
    return filemap_guarded_copy(dst, src, length);
}

int filemap_load(const struct filemap *m, uint64_t offset, uint8_t *dst, uint32_t length)
{
    if (offset > m->length || length > m->length - offset)
        return -EINVAL;
    filemap_populate(m->base + offset, length, MADV_POPULATE_READ);
    return filemap_guarded_copy(dst, m->base + offset, length);
}

void filemap_close(struct filemap *m)
{
    if (m->base)
        munmap(m->base, (size_t)m->length);
    *m = (struct filemap){ 0 };
}

const char *filemap_path_name(const struct filemap *m)
{
    if (!m->base)
        return "read()/write()";
    return m->huge ? "mapped, huge pages asked for" : "mapped";
}
