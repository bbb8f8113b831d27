/* fileop: a channel in FILE mode. SET_MODE once after the claim, then one function per FILE_* request
 * that waits for its answer (the transfer pipelines use the inflight table directly). Paths go into the
 * slice's path area. A status other than OK becomes a message
 *     vmgmt-guest: <op> <path>: <status in words> (status <n>)
 * with exit 8 (REFUSED), or exit 6 for the channel-level statuses 1..7. `op` is the command ("get", "ls"). */
#ifndef VG_FILEOP_H
#define VG_FILEOP_H
#include <stdbool.h>
#include <stdint.h>

#include "channel.h"
#include "inflight.h"
#include "sha256.h"
#include "slice.h"

#define FILEOP_LIST_MAX_BUFFER_BYTES (256u * 1024u)

struct fileop {
    struct channel *ch;
    struct inflight table;
    struct slice slice;
    int32_t refused_status;  /* the last non-OK status an answer carried (0: none), for callers that pass it on (the agent) */
};

/* Attaches the slice and sends SET_MODE {FILE}. Returns a report_exit code. */
int fileop_start(struct fileop *f, struct channel *ch, uint32_t timeout_ms);

/* The same with another mode that serves FILE_* (MODE_AGENT); mode_name ("agent") is for messages. */
int fileop_start_in_mode(struct fileop *f, struct channel *ch, uint32_t timeout_ms, uint32_t mode, const char *mode_name);

/* Prints the message for a non-OK status of `type` on op/path and records it in refused_status; returns 8 or 6. */
int fileop_refused(struct fileop *f, uint16_t type, int32_t status, const char *op, const char *path);

/* Checks an answer: status OK (else fileop_refused) and at least `need` payload bytes (else exit 6). */
int fileop_expect(struct fileop *f, const struct inflight_answer *a, uint32_t need, const char *op, const char *path);

int fileop_open(struct fileop *f, const char *op, const char *path, uint32_t flags, uint32_t mode, uint64_t size, struct vmgmt_file_info *info);
int fileop_close(struct fileop *f, const char *op, const char *path, uint32_t handle, uint32_t flags);
int fileop_stat(struct fileop *f, const char *op, const char *path, struct vmgmt_file_info *info);
int fileop_mkdir(struct fileop *f, const char *op, const char *path, uint32_t mode);
int fileop_remove(struct fileop *f, const char *op, const char *path, uint32_t flags);
int fileop_hash(struct fileop *f, const char *op, const char *path, uint32_t handle, uint8_t digest[SHA256_BYTES]);

/* Called for each directory entry; name is NUL-terminated, has no '/' and no NUL. Nonzero stops the listing. */
typedef int (*fileop_entry_fn)(void *arg, const struct vmgmt_dirent *entry, const char *name);

/* FILE_LIST pages until next_cookie is 0. Every entry is copied out of the slice and checked against the
 * page's `bytes` and `count` before fn sees it. Returns a report_exit code (or fn's nonzero result). */
int fileop_list(struct fileop *f, const char *op, const char *path, fileop_entry_fn fn, void *arg);

/* Cleanup after an error or SIGINT: waits for outstanding answers, then FILE_CLOSE without COMMIT (a WRITE
 * handle's data is discarded). Prints only under -v. Does nothing when the channel is broken. True when the
 * core confirmed the close. */
bool fileop_abandon(struct fileop *f, const char *path, uint32_t handle);

/* "file", "dir", "symlink", "other" or "unknown". */
const char *fileop_type_name(uint32_t type);

#endif
