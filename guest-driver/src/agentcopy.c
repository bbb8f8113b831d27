#include "agentcopy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "report.h"
#include "transfer.h"

int32_t agentcopy_errno_status(int err)
{
    switch (err) {
    case ENOENT: return VMGMT_ST_NOT_FOUND;
    case EACCES:
    case EPERM: return VMGMT_ST_PERMISSION_DENIED;
    case EISDIR: return VMGMT_ST_IS_DIRECTORY;
    case ENOTDIR: return VMGMT_ST_NOT_DIRECTORY;
    case EROFS: return VMGMT_ST_READ_ONLY;
    case ENOSPC:
    case EDQUOT: return VMGMT_ST_GUEST_NO_SPACE;
    case EFBIG: return VMGMT_ST_FILE_TOO_LARGE;
    case ENAMETOOLONG: return VMGMT_ST_BAD_PATH;
    case EMFILE:
    case ENFILE: return VMGMT_ST_TOO_MANY_OPEN;
    case ELOOP: return VMGMT_ST_NOT_REGULAR;
    default: return VMGMT_ST_IO_ERROR;
    }
}

/* A guest-side call failed: says so and gives its status. */
static int32_t agentcopy_local(const struct agentmsg_copy *req, const char *what, const char *path, int err, const char *hint)
{
    report_error(REPORT_EXIT_SYSTEM, "agent: copy %s %s: %s %s: %s%s", agentmsg_direction_name(req->direction), req->guest_path, what, path,
                 strerror(err), hint);
    return agentcopy_errno_status(err);
}

/* The status for a failed request step (report_exit code rc): the host's refusal, the local errno, or IO_ERROR. */
static int32_t agentcopy_failed(struct fileop *f, int local_errno, struct agentcopy_result *res)
{
    res->channel_broken = f->table.broken;
    if (f->refused_status != VMGMT_ST_OK)
        return f->refused_status;
    if (local_errno)
        return agentcopy_errno_status(local_errno);
    return VMGMT_ST_IO_ERROR;
}

static struct agentcopy_result agentcopy_to_guest(struct fileop *f, const struct agentmsg_copy *req)
{
    struct agentcopy_result res = { .status = VMGMT_ST_OK };
    const char *dst = req->guest_path;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s%s", dst, AGENTMSG_TMP_SUFFIX);
    struct stat st;
    if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
        res.status = agentcopy_local(req, "cannot replace", dst, EISDIR, "");
        return res;
    }
    struct vmgmt_file_info info;
    if (fileop_open(f, "copy to-guest", req->host_path, VMGMT_FILE_OPEN_READ, 0, 0, &info)) {
        res.status = agentcopy_failed(f, 0, &res);
        return res;
    }
    bool handle_open = true;
    if (unlink(tmp) < 0 && errno != ENOENT) {
        res.status = agentcopy_local(req, "cannot remove the stale", tmp, errno, "");
        goto close_handle;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)((info.mode & 0666u) | 0600u));
    if (fd < 0) {
        int err = errno;
        res.status = agentcopy_local(req, "cannot create", tmp, err, err == ENOENT ? " (the parent directory must exist)" : "");
        goto close_handle;
    }
    int local_errno;
    if (transfer_pull(f, req->host_path, info.handle, fd, tmp, info.size, &local_errno)) {
        res.status = agentcopy_failed(f, local_errno, &res);
        goto close_fd;
    }
    if (fsync(fd) < 0) {
        res.status = agentcopy_local(req, "fsync of", tmp, errno, "");
        goto close_fd;
    }
    handle_open = false;
    if (fileop_close(f, "copy to-guest", req->host_path, info.handle, 0)) {
        res.status = agentcopy_failed(f, 0, &res);
        goto close_fd;
    }
    if (rename(tmp, dst) < 0) {
        res.status = agentcopy_local(req, "cannot rename the temporary file over", dst, errno, "");
        goto close_fd;
    }
    res.bytes = info.size;
close_fd:
    close(fd);
    if (res.status != VMGMT_ST_OK)
        unlink(tmp);
close_handle:
    if (handle_open && !fileop_abandon(f, req->host_path, info.handle))
        res.channel_broken = res.channel_broken || f->table.broken;
    return res;
}

/* Sends the open regular file fd (size bytes from offset 0) to req->host_path: FILE_OPEN WRITE, FILE_WRITEs,
 * FILE_CLOSE COMMIT. */
static void agentcopy_send_fd(struct fileop *f, const struct agentmsg_copy *req, int fd, const char *what, uint32_t mode, uint64_t size,
                              struct agentcopy_result *res)
{
    struct vmgmt_file_info info;
    if (fileop_open(f, "copy from-guest", req->host_path, VMGMT_FILE_OPEN_WRITE, mode & 0666u, size, &info)) {
        res->status = agentcopy_failed(f, 0, res);
        return;
    }
    int local_errno;
    if (transfer_push(f, req->host_path, info.handle, fd, what, size, &local_errno)) {
        res->status = agentcopy_failed(f, local_errno, res);
        if (!fileop_abandon(f, req->host_path, info.handle))
            res->channel_broken = res->channel_broken || f->table.broken;
        return;
    }
    /* Once COMMIT is sent the host decides; wait for its answer even after SIGTERM, as `file put` does. */
    bool saved = f->ch->dev->ignore_stop;
    f->ch->dev->ignore_stop = true;
    int rc = fileop_close(f, "copy from-guest", req->host_path, info.handle, VMGMT_FILE_CLOSE_COMMIT);
    f->ch->dev->ignore_stop = saved;
    if (rc)
        res->status = agentcopy_failed(f, 0, res);
    else
        res->bytes = size;
}

static struct agentcopy_result agentcopy_from_guest(struct fileop *f, const struct agentmsg_copy *req)
{
    struct agentcopy_result res = { .status = VMGMT_ST_OK };
    const char *src = req->guest_path;
    /* O_NONBLOCK: a fifo must not hang the agent; it is refused below as not regular. */
    int fd = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        res.status = agentcopy_local(req, "cannot open", src, errno, "");
        return res;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        res.status = agentcopy_local(req, "cannot stat", src, errno, "");
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        report_error(REPORT_EXIT_SYSTEM, "agent: copy from-guest %s: not a regular file; only regular files are copied", src);
        res.status = S_ISDIR(st.st_mode) ? VMGMT_ST_IS_DIRECTORY : VMGMT_ST_NOT_REGULAR;
        goto close_fd;
    }
    agentcopy_send_fd(f, req, fd, src, (uint32_t)st.st_mode, (uint64_t)st.st_size, &res);
close_fd:
    close(fd);
    return res;
}

/* AGENT_LIST: the entries of the directory guest_path (lstat types, the full st_mode), as vmgmt_dirent
 * records padded to 8 bytes, into a memfd sent like a from-guest copy. The host checks every name. */
static struct agentcopy_result agentcopy_list(struct fileop *f, const struct agentmsg_copy *req)
{
    struct agentcopy_result res = { .status = VMGMT_ST_OK };
    const char *src = req->guest_path;
    int dfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        res.status = agentcopy_local(req, "cannot open the directory", src, err, err == ELOOP ? " (a symlink: not followed)" : "");
        if (err == ELOOP)
            res.status = VMGMT_ST_NOT_DIRECTORY; /* O_NOFOLLOW on a symlink: it is not a directory to list */
        return res;
    }
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        res.status = agentcopy_local(req, "cannot read the directory", src, errno, "");
        close(dfd);
        return res;
    }
    int out = memfd_create("vmgmt-agent-list", MFD_CLOEXEC);
    if (out < 0) {
        res.status = agentcopy_local(req, "cannot create a memfd for the listing of", src, errno, "");
        closedir(dir);
        return res;
    }
    uint64_t total = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno) {
                res.status = agentcopy_local(req, "cannot read the directory", src, errno, "");
                goto done;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone meanwhile */
        size_t name_len = strlen(de->d_name);
        struct vmgmt_dirent rec = {
            .size = (uint64_t)st.st_size,
            .mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec,
            .mode = (uint32_t)st.st_mode,
            .type = (uint16_t)(S_ISREG(st.st_mode) ? VMGMT_FILE_TYPE_FILE : S_ISDIR(st.st_mode) ? VMGMT_FILE_TYPE_DIR : S_ISLNK(st.st_mode) ? VMGMT_FILE_TYPE_SYMLINK : VMGMT_FILE_TYPE_OTHER),
            .name_len = (uint16_t)name_len,
        };
        uint8_t buf[sizeof(rec) + 256 + 8] = { 0 };
        memcpy(buf, &rec, sizeof(rec));
        memcpy(buf + sizeof(rec), de->d_name, name_len);
        size_t n = (sizeof(rec) + name_len + 7u) & ~(size_t)7u;
        if (write(out, buf, n) != (ssize_t)n) {
            res.status = agentcopy_local(req, "cannot write the listing of", src, errno, "");
            goto done;
        }
        total += n;
    }
    if (lseek(out, 0, SEEK_SET) < 0) {
        res.status = agentcopy_local(req, "cannot rewind the listing of", src, errno, "");
        goto done;
    }
    agentcopy_send_fd(f, req, out, src, 0600u, total, &res);
done:
    close(out);
    closedir(dir);
    return res;
}

struct agentcopy_result agentcopy_run(struct fileop *f, const struct agentmsg_copy *req)
{
    uint64_t start = clock_now_ns();
    f->refused_status = VMGMT_ST_OK;
    struct agentcopy_result res = req->type == VMGMT_MSG_AGENT_LIST ? agentcopy_list(f, req)
                                  : req->direction == VMGMT_AGENT_COPY_TO_GUEST ? agentcopy_to_guest(f, req) : agentcopy_from_guest(f, req);
    res.elapsed_ns = clock_now_ns() - start;
    return res;
}
