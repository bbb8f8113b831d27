/* filemap: the mapped data path of `file get`/`file put` and the agent's copies. Instead of a write() or
 * read() per buffer (the kernel copying each 4 KiB page through its write path), the local file is mapped
 * (mmap MAP_SHARED, huge pages asked for with MADV_HUGEPAGE where the file system has them) and the bytes
 * are copied between it and BAR2 in user space: one memcpy per buffer.
 *
 * - A target (get) grows by fallocate (ftruncate where the file system has no fallocate) right before each
 *   buffer is copied in, in file order: its size is always the end of the last buffer stored, at most one
 *   buffer (FILEMAP_MAX_UNFILLED_BYTES) of which may be unfilled after a kill -9 (resume backs off by that).
 *   fallocate reserves the blocks, so a full file system is ENOSPC, not a SIGBUS in the copy.
 * - A source (put) is mapped at the size it had when the transfer began. A file truncated under the mapping
 *   raises SIGBUS on the next page touched: the copy runs under a sigsetjmp guard that turns it into
 *   -EFAULT for the caller to put in words (and the process keeps running).
 * - filemap_open_* returns false where mapping does not apply or is refused (pipes, character devices such
 *   as /dev/null, /proc files, empty files, file systems without mmap); callers fall back to read()/write().
 * One prefix: filemap_. The SIGBUS guard is per thread (a jump buffer in thread-local storage). */
#ifndef VG_FILEMAP_H
#define VG_FILEMAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILEMAP_MAX_UNFILLED_BYTES (1u << 20)
/* Directions that map by default (VMGMT_GUEST_MAP overrides). Measured under TCG on tmpfs (decision record
 * docs/decisions/file-data-path.md): a mapped get is slower than write() (fallocate and the page faults
 * zero every page before the copy fills it), a mapped put is level with read(); so gets write(). */
#define FILEMAP_DEFAULT_DIRECTIONS "put"

struct filemap {
    uint8_t *base;      /* NULL: not mapped, use read()/write() */
    uint64_t length;    /* bytes mapped (the file's final size for a target, its size at the start for a source) */
    bool huge;          /* MADV_HUGEPAGE was accepted */
    bool can_fallocate; /* target: fallocate works here (else ftruncate) */
};

/* Maps fd (opened O_RDWR) for a get of `size` bytes. False (and *why set to the errno) when it cannot be. */
bool filemap_open_target(struct filemap *m, int fd, uint64_t size, int *why);

/* Maps fd (opened for reading) for a put of `size` bytes. False (and *why set) when it cannot be. */
bool filemap_open_source(struct filemap *m, int fd, uint64_t size, int *why);

/* Target: extends the file to offset + length and copies length bytes from src to offset. 0 or -errno
 * (-ENOSPC when the blocks cannot be reserved, -EFAULT when someone truncated the file under the mapping:
 * shorter than offset, or SIGBUS in the copy). */
int filemap_store(struct filemap *m, int fd, uint64_t offset, const uint8_t *src, uint32_t length);

/* Source: copies length bytes at offset to dst. 0, or -EFAULT when the file ended under the mapping. */
int filemap_load(const struct filemap *m, uint64_t offset, uint8_t *dst, uint32_t length);

/* memcpy under the SIGBUS guard: 0, or -EFAULT when a page of src or dst raised SIGBUS. */
int filemap_guarded_copy(void *dst, const void *src, size_t length);

void filemap_close(struct filemap *m);

/* "mapped, huge pages asked for", "mapped" or "read()/write()", for -v lines. */
const char *filemap_path_name(const struct filemap *m);

#endif
