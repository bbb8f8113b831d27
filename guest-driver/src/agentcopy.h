/* agentcopy: one AGENT_COPY, carried out with file-mode requests on the agent's own channel (the core serves
 * FILE_* in AGENT mode), reusing the pipelines of `file get` / `file put` (src/transfer.c).
 *   TO_GUEST: FILE_OPEN READ of the host path, FILE_READs pipelined into <guest path>.vmgmt-tmp (created
 *   afresh, never through a symlink), fsync, FILE_CLOSE, rename over the guest path: it appears complete or
 *   not at all. The parent directory must exist (NOT_FOUND otherwise); an existing directory is IS_DIRECTORY.
 *   FROM_GUEST: open the guest path (a regular file), FILE_OPEN WRITE with its size, FILE_WRITEs pipelined,
 *   FILE_CLOSE COMMIT. Any failure closes the host handle without COMMIT and removes the guest temp file.
 * The status for the answer is OK, the host's own status when it refused one of our requests, the errno of a
 * failed guest-side call in status words (agentcopy_errno_status), or IO_ERROR when the channel broke. */
#ifndef VG_AGENTCOPY_H
#define VG_AGENTCOPY_H
#include <stdbool.h>
#include <stdint.h>

#include "agentmsg.h"
#include "fileop.h"

struct agentcopy_result {
    int32_t status;        /* for the answer */
    uint64_t bytes;        /* file size on success */
    uint64_t elapsed_ns;
    bool channel_broken;   /* the channel can no longer carry requests: the agent must reset it */
};

struct agentcopy_result agentcopy_run(struct fileop *f, const struct agentmsg_copy *req);

/* Guest errno -> status: ENOENT NOT_FOUND, EACCES/EPERM PERMISSION_DENIED, EISDIR IS_DIRECTORY, ENOTDIR
 * NOT_DIRECTORY, EROFS READ_ONLY, ENOSPC/EDQUOT QUOTA_EXCEEDED, EFBIG FILE_TOO_LARGE, ENAMETOOLONG BAD_PATH,
 * EMFILE/ENFILE TOO_MANY_OPEN, ELOOP NOT_REGULAR; anything else IO_ERROR. */
int32_t agentcopy_errno_status(int err);

#endif
