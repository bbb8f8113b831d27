/* transfer: `file get` and `file put`, pipelined. The slice is split into the path area (first
 * MAX_PATH_BYTES) and N buffers of up to 1 MiB (N = min(16, what fits, what may be in flight)); all N
 * FILE_READs or FILE_WRITEs are kept in flight. Data moves between the local file and the mapped slice with
 * pwrite/pread directly (one copy). A get writes LOCAL.part strictly in file order, so after an
 * interruption LOCAL.part is a prefix of the host file (what --resume continues from), and renames it to
 * LOCAL when complete. A put lands on the host only with FILE_CLOSE COMMIT; any failure (or SIGINT)
 * closes the handle without COMMIT. The final line is
 *     get: bytes=<n> ms=<t> MBps=<rate> sha256=<hex|skipped>     (put: likewise)
 * where bytes are those moved by this run, ms covers FILE_OPEN to the last byte stored (local fsync for
 * a get, COMMIT for a put), MBps is 10^6 bytes/s; hashing (--sha256) happens after the timed part. */
#ifndef VG_TRANSFER_H
#define VG_TRANSFER_H
#include <stdbool.h>

#include "fileop.h"

#define TRANSFER_MAX_BUFFERS 16u
#define TRANSFER_BUFFER_BYTES (1u << 20)

struct transfer_options {
    const char *host_path;
    const char *local_path;  /* get: NULL = the basename of host_path; an existing directory gets that basename inside */
    bool resume;             /* get: continue from the size of LOCAL.part */
    bool sha256;             /* compare the host's FILE_HASH with the local file's sha256 */
    bool quiet;              /* no progress lines on stderr */
};

int transfer_get(struct fileop *f, const struct transfer_options *o);
int transfer_put(struct fileop *f, const struct transfer_options *o);

/* The pipelines without the command around them (no local naming, no final line), for the agent.
 * transfer_pull moves bytes [0, size) of the open READ handle into fd, written in file order (no fsync);
 * transfer_push moves size bytes of fd into the open WRITE handle (which stays open: the caller commits).
 * local_name names fd in messages. Both return a report_exit code; *local_errno is the errno of a failed
 * local read or write (ENODATA: fd ended before size), 0 when the failure was not local. */
int transfer_pull(struct fileop *f, const char *host_path, uint32_t handle, int fd, const char *local_name, uint64_t size, int *local_errno);
int transfer_push(struct fileop *f, const char *host_path, uint32_t handle, int fd, const char *local_name, uint64_t size, int *local_errno);

#endif
