#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "filemap.h"
#include "report.h"
#include "signals.h"

#define TRANSFER_PROGRESS_NS 1000000000ull

struct transfer_buf {
    uint32_t slice_offset;  /* where the buffer starts in the slice */
    bool busy;              /* a request on it is outstanding, or (get) it holds data not yet stored locally */
    bool complete;          /* get: all `length` bytes arrived */
    uint64_t file_offset;   /* where its data belongs in the file */
    uint32_t length;        /* bytes it carries */
    uint32_t done;          /* bytes the host has read or written so far (short ones are re-asked for the rest) */
};

struct transfer {
    struct fileop *f;
    const struct transfer_options *o;
    const char *op;             /* "get" or "put" */
    uint32_t handle;
    bool handle_open;
    struct transfer_buf buf[TRANSFER_MAX_BUFFERS];
    uint32_t buf_count;
    uint32_t buf_bytes;
    uint64_t start_ns;
    uint64_t last_progress_ns;
    int local_errno;            /* errno of a failed local read or write in the data phase, 0 otherwise */
    struct filemap map;         /* the local file mapped (filemap.h), or base NULL: read()/write() */
};

static int transfer_plan(struct transfer *t)
{
    const struct slice *s = &t->f->slice;
    uint32_t room = s->size - SLICE_PATH_AREA_BYTES;
    if (room == 0)
        return report_error(REPORT_EXIT_DEVICE_INVALID,
                            "the %u-byte data slice of channel %u leaves no room for a transfer buffer after the %u-byte path area; configure the host with a larger region",
                            s->size, t->f->ch->index, SLICE_PATH_AREA_BYTES);
    t->buf_bytes = room < TRANSFER_BUFFER_BYTES ? room : TRANSFER_BUFFER_BYTES;
    if (t->buf_bytes >= 4096)
        t->buf_bytes &= ~4095u;
    t->buf_count = room / t->buf_bytes;
    if (t->buf_count > TRANSFER_MAX_BUFFERS)
        t->buf_count = TRANSFER_MAX_BUFFERS;
    if (t->buf_count > t->f->table.limit)
        t->buf_count = t->f->table.limit;
    for (uint32_t i = 0; i < t->buf_count; i++)
        t->buf[i] = (struct transfer_buf){ .slice_offset = SLICE_PATH_AREA_BYTES + i * t->buf_bytes };
    report_verbose(t->f->ch->dev->verbose, "%s: %u buffers of %u bytes in a %u-byte slice", t->op, t->buf_count, t->buf_bytes, s->size);
    return REPORT_EXIT_OK;
}

static void transfer_progress(struct transfer *t, uint64_t done, uint64_t total, bool last)
{
    if (t->o->quiet)
        return;
    uint64_t now = clock_now_ns();
    if (!last && now - t->last_progress_ns < TRANSFER_PROGRESS_NS)
        return;
    if (last && t->last_progress_ns == t->start_ns)
        return; /* finished within the first second: no progress was shown, none to close */
    t->last_progress_ns = now;
    bool tty = isatty(STDERR_FILENO);
    fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 " bytes (%u%%)%s", t->op, done, total, total ? (unsigned)(done * 100 / total) : 100u,
            tty && !last ? "\r" : "\n");
}

static void transfer_finish_line(const struct transfer *t, uint64_t bytes, uint64_t elapsed_ns, const char *hash_hex, FILE *out)
{
    double rate = elapsed_ns ? (double)bytes * 1000.0 / (double)elapsed_ns : 0.0;
    fprintf(out, "%s: bytes=%" PRIu64 " ms=%" PRIu64 " MBps=%.1f sha256=%s\n", t->op, bytes, (elapsed_ns + 500000) / 1000000, rate, hash_hex);
    fflush(out);
}

/* Sends a FILE_READ or FILE_WRITE for what is left of buffer i. */
static int transfer_send_io(struct transfer *t, uint16_t type, uint32_t i)
{
    struct transfer_buf *b = &t->buf[i];
    struct vmgmt_file_io req = {
        .handle = t->handle,
        .length = b->length - b->done,
        .file_offset = b->file_offset + b->done,
        .buf_offset = b->slice_offset + b->done,
    };
    char during[256];
    snprintf(during, sizeof(during), "%s at byte %" PRIu64 " of %.200s", inflight_type_name(type), req.file_offset, t->o->host_path);
    b->busy = true;
    return inflight_send(&t->f->table, type, &req, sizeof(req), i, during, NULL);
}

/* Waits for one FILE_READ/FILE_WRITE answer and accounts it on its buffer; *finished says the buffer has all its bytes. */
static int transfer_take_io(struct transfer *t, uint16_t type, struct transfer_buf **out, bool *finished)
{
    struct inflight_answer a;
    char during[256];
    snprintf(during, sizeof(during), "%s of %.200s", t->op, t->o->host_path);
    int rc = inflight_next(&t->f->table, &a, during);
    if (rc)
        return rc;
    rc = fileop_expect(t->f, &a, sizeof(struct vmgmt_file_io_result), t->op, t->o->host_path);
    if (rc)
        return rc;
    if (a.tag >= t->buf_count || a.type != type)
        return report_error(REPORT_EXIT_SYSTEM, "internal error: answer to %s tagged %u during %s", inflight_type_name(a.type), a.tag, during);
    struct vmgmt_file_io_result res;
    memcpy(&res, a.payload, sizeof(res));
    struct transfer_buf *b = &t->buf[a.tag];
    uint32_t asked = b->length - b->done;
    if (res.bytes > asked)
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the host during %s %s: %s at byte %" PRIu64 " reports %u bytes, but %u were asked for; restart the vmgmt daemon",
                            t->op, t->o->host_path, inflight_type_name(type), b->file_offset + b->done, res.bytes, asked);
    if (res.bytes == 0 && type == VMGMT_MSG_FILE_READ)
        return report_error(REPORT_EXIT_PROTOCOL,
                            "the host file %s ended at byte %" PRIu64 ", before the size it had when opened: it changed during the transfer; run the get again",
                            t->o->host_path, b->file_offset + b->done);
    if (res.bytes == 0)
        return report_error(REPORT_EXIT_PROTOCOL, "the host wrote 0 of %u bytes at byte %" PRIu64 " of %s; check the host's disk and retry", asked,
                            b->file_offset + b->done, t->o->host_path);
    b->done += res.bytes;
    *out = b;
    *finished = b->done == b->length;
    return REPORT_EXIT_OK;
}

static int transfer_local_error(const char *what, const char *path, int err)
{
    return report_error(REPORT_EXIT_SYSTEM, "%s %s: %s", what, path, strerror(err));
}

/* A local read or write failed while data moved: remembered for callers that turn it into a status. */
static int transfer_data_error(struct transfer *t, const char *what, const char *path, int err)
{
    t->local_errno = err;
    return transfer_local_error(what, path, err);
}

/* Data reaches the local file in file order, so a pipe or /dev/null (no pwrite: ESPIPE) gets plain writes. */
static int transfer_pwrite_all(int fd, const uint8_t *p, uint32_t length, uint64_t offset)
{
    bool stream = false;
    while (length) {
        ssize_t n = stream ? write(fd, p, length) : pwrite(fd, p, length, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ESPIPE && !stream) {
            stream = true;
            continue;
        }
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        length -= (uint32_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/* Reads exactly length bytes; -ENODATA when the file ends first. */
static int transfer_pread_all(int fd, uint8_t *p, uint32_t length, uint64_t offset)
{
    while (length) {
        ssize_t n = pread(fd, p, length, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        p += n;
        length -= (uint32_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/* The last component of a host path ("a/b.txt" -> "b.txt"); empty for "", "dir/", ".", "..". */
static void transfer_basename(const char *path, char *out, size_t cap)
{
    size_t end = strlen(path);
    while (end > 0 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t n = end - start;
    if (n >= cap || (n == 1 && path[start] == '.') || (n == 2 && path[start] == '.' && path[start + 1] == '.'))
        n = 0;
    memcpy(out, path + start, n);
    out[n] = '\0';
}

static int transfer_local_target(const struct transfer_options *o, char *local, size_t cap)
{
    char base[NAME_MAX + 1];
    transfer_basename(o->host_path, base, sizeof(base));
    struct stat st;
    if (!o->local_path || (stat(o->local_path, &st) == 0 && S_ISDIR(st.st_mode))) {
        if (!base[0])
            return report_error(REPORT_EXIT_USAGE, "get: the host path '%s' has no file name to store it under; give LOCAL (see vmgmt-guest help)",
                                o->host_path);
        if (snprintf(local, cap, "%s%s%s", o->local_path ? o->local_path : "", o->local_path ? "/" : "", base) >= (int)cap)
            return report_error(REPORT_EXIT_USAGE, "get: local path %s/%s is too long", o->local_path, base);
        return REPORT_EXIT_OK;
    }
    if (snprintf(local, cap, "%s", o->local_path) >= (int)cap)
        return report_error(REPORT_EXIT_USAGE, "get: local path %.80s... is too long", o->local_path);
    return REPORT_EXIT_OK;
}

/* Stores every buffer whose data comes next in file order; keeps *written the length of the stored prefix. */
static int transfer_get_flush(struct transfer *t, int fd, const char *part, uint64_t *written, uint64_t *next_req, uint64_t end)
{
    for (bool moved = true; moved;) {
        moved = false;
        for (uint32_t i = 0; i < t->buf_count; i++) {
            struct transfer_buf *b = &t->buf[i];
            if (!b->busy || !b->complete || b->file_offset != *written)
                continue;
            const uint8_t *src = slice_at(&t->f->slice, b->slice_offset);
            int err = t->map.base ? filemap_store(&t->map, fd, b->file_offset, src, b->length) : transfer_pwrite_all(fd, src, b->length, b->file_offset);
            if (err == -EFAULT && t->map.base) {
                t->local_errno = EIO;
                return report_error(REPORT_EXIT_SYSTEM, "writing %s: it was truncated by someone else while it was mapped (SIGBUS at byte %" PRIu64 "); run the transfer again",
                                    part, b->file_offset);
            }
            if (err)
                return transfer_data_error(t, "writing", part, -err);
            *written += b->length;
            *b = (struct transfer_buf){ .slice_offset = b->slice_offset };
            moved = true;
        }
    }
    for (uint32_t i = 0; i < t->buf_count && *next_req < end && !inflight_full(&t->f->table); i++) {
        struct transfer_buf *b = &t->buf[i];
        if (b->busy)
            continue;
        uint64_t left = end - *next_req;
        *b = (struct transfer_buf){ .slice_offset = b->slice_offset, .file_offset = *next_req,
                                    .length = left < t->buf_bytes ? (uint32_t)left : t->buf_bytes };
        *next_req += b->length;
        int rc = transfer_send_io(t, VMGMT_MSG_FILE_READ, i);
        if (rc)
            return rc;
    }
    return REPORT_EXIT_OK;
}

/* Maps fd as the target of [0, end) where it can be (filemap.h); elsewhere data goes through write(). */
static void transfer_map_target(struct transfer *t, int fd, const char *name, uint64_t end)
{
    int why = 0;
    if (!filemap_open_target(&t->map, fd, end, &why))
        report_verbose(t->f->ch->dev->verbose, "%s: %s not mapped (%s): data path read()/write()", t->op, name, strerror(why));
    else
        report_verbose(t->f->ch->dev->verbose, "%s: data path %s", t->op, filemap_path_name(&t->map));
}

/* After a failed get the mapped target may have grown past what was stored: cut it back to the prefix. */
static void transfer_cut_back(struct transfer *t, int fd, uint64_t written)
{
    if (t->map.base && ftruncate(fd, (off_t)written) < 0)
        report_verbose(t->f->ch->dev->verbose, "%s: could not cut the local file back to its %" PRIu64 " stored bytes: %s", t->op, written, strerror(errno));
}

static int transfer_get_data(struct transfer *t, int fd, const char *part, uint64_t start, uint64_t end)
{
    uint64_t written = start, next_req = start;
    transfer_map_target(t, fd, part, end);
    int rc = transfer_get_flush(t, fd, part, &written, &next_req, end);
    while (!rc && written < end) {
        struct transfer_buf *b;
        bool finished;
        rc = transfer_take_io(t, VMGMT_MSG_FILE_READ, &b, &finished);
        if (rc)
            break;
        if (!finished) {
            rc = transfer_send_io(t, VMGMT_MSG_FILE_READ, (uint32_t)(b - t->buf));
            continue;
        }
        b->complete = true;
        rc = transfer_get_flush(t, fd, part, &written, &next_req, end);
        transfer_progress(t, written, end, false);
    }
    if (rc)
        transfer_cut_back(t, fd, written);
    filemap_close(&t->map);
    return rc;
}

static int transfer_compare(const uint8_t host[SHA256_BYTES], const uint8_t guest[SHA256_BYTES], char *hex_out, const char *what_to_do)
{
    char host_hex[2 * SHA256_BYTES + 1];
    sha256_hex(host, host_hex);
    sha256_hex(guest, hex_out);
    if (memcmp(host, guest, SHA256_BYTES) == 0)
        return REPORT_EXIT_OK;
    return report_error(REPORT_EXIT_INTEGRITY, "integrity check failed: host %s, guest %s (%s)", host_hex, hex_out, what_to_do);
}

/* `file get HOSTPATH -`: the data to stdout, in file order (a pipe, or /dev/null to time the transport
 * alone); the summary line goes to stderr. */
static int transfer_get_stdout(struct transfer *t)
{
    const struct transfer_options *o = t->o;
    if (o->resume || o->sha256)
        return report_error(REPORT_EXIT_USAGE, "get %s -: --resume and --sha256 need a local file, not stdout", o->host_path);
    int rc = transfer_plan(t);
    if (rc)
        return rc;
    t->start_ns = t->last_progress_ns = clock_now_ns();
    struct vmgmt_file_info info;
    rc = fileop_open(t->f, "get", o->host_path, VMGMT_FILE_OPEN_READ, 0, 0, &info);
    if (rc)
        return rc;
    t->handle = info.handle;
    t->handle_open = true;
    rc = transfer_get_data(t, STDOUT_FILENO, "stdout", 0, info.size);
    if (!rc) {
        uint64_t elapsed_ns = clock_now_ns() - t->start_ns;
        t->handle_open = false;
        rc = fileop_close(t->f, "get", o->host_path, t->handle, 0);
        if (!rc)
            transfer_finish_line(t, info.size, elapsed_ns, "skipped", stderr);
    }
    if (t->handle_open)
        fileop_abandon(t->f, o->host_path, t->handle);
    return rc;
}

int transfer_get(struct fileop *f, const struct transfer_options *o)
{
    struct transfer t = { .f = f, .o = o, .op = "get" };
    if (o->local_path && strcmp(o->local_path, "-") == 0)
        return transfer_get_stdout(&t);
    char local[PATH_MAX], part[PATH_MAX + 8];
    int rc = transfer_local_target(o, local, sizeof(local));
    if (rc)
        return rc;
    snprintf(part, sizeof(part), "%s.part", local);
    rc = transfer_plan(&t);
    if (rc)
        return rc;

    t.start_ns = t.last_progress_ns = clock_now_ns();
    struct vmgmt_file_info info;
    rc = fileop_open(f, "get", o->host_path, VMGMT_FILE_OPEN_READ, 0, 0, &info);
    if (rc)
        return rc;
    t.handle = info.handle;
    t.handle_open = true;

    uint64_t start = 0;
    struct stat st;
    if (o->resume && stat(part, &st) == 0) {
        /* A mapped get grows the file before it fills a buffer: after a kill -9 the last buffer may be unfilled. */
        start = (uint64_t)st.st_size > FILEMAP_MAX_UNFILLED_BYTES ? (uint64_t)st.st_size - FILEMAP_MAX_UNFILLED_BYTES : 0;
        if ((uint64_t)st.st_size > info.size) {
            rc = report_error(REPORT_EXIT_SYSTEM, "get --resume: %s is %" PRIu64 " bytes, larger than the %" PRIu64 "-byte host file %s: it is not a part of it; delete it or get without --resume",
                              part, (uint64_t)st.st_size, info.size, o->host_path);
            goto close_handle;
        }
        report_verbose(f->ch->dev->verbose, "get: resuming %s at byte %" PRIu64 " of %" PRIu64, part, start, info.size);
    }
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC | (o->resume ? 0 : O_TRUNC), (mode_t)((info.mode & 0666u) | 0600u));
    if (fd < 0) {
        rc = transfer_local_error("cannot open", part, errno);
        goto close_handle;
    }
    if (start > 0 && ftruncate(fd, (off_t)start) < 0) {
        rc = transfer_local_error("cannot cut back", part, errno);
        goto close_fd;
    }
    rc = transfer_get_data(&t, fd, part, start, info.size);
    if (rc)
        goto close_fd;
    if (fsync(fd) < 0) {
        rc = transfer_local_error("fsync of", part, errno);
        goto close_fd;
    }
    uint64_t elapsed_ns = clock_now_ns() - t.start_ns;
    transfer_progress(&t, info.size, info.size, true);

    char hex[2 * SHA256_BYTES + 1] = "skipped";
    if (o->sha256) {
        uint8_t host[SHA256_BYTES], guest[SHA256_BYTES];
        rc = fileop_hash(f, "get", o->host_path, t.handle, host);
        if (rc)
            goto close_fd;
        int err = sha256_fd(fd, guest);
        if (err) {
            rc = transfer_local_error("reading (to hash)", part, -err);
            goto close_fd;
        }
        rc = transfer_compare(host, guest, hex, "the local copy was removed; run the get again");
        if (rc) {
            unlink(part);
            goto close_fd;
        }
    }
    t.handle_open = false;
    rc = fileop_close(f, "get", o->host_path, t.handle, 0);
    if (rc)
        goto close_fd;
    if (rename(part, local) < 0) {
        rc = report_error(REPORT_EXIT_SYSTEM, "cannot rename %s to %s: %s", part, local, strerror(errno));
        goto close_fd;
    }
    transfer_finish_line(&t, info.size - start, elapsed_ns, hex, stdout);
close_fd:
    close(fd);
close_handle:
    if (t.handle_open)
        fileop_abandon(f, o->host_path, t.handle);
    return rc;
}

static int transfer_put_loop(struct transfer *t, int fd, uint64_t size);

static int transfer_put_data(struct transfer *t, int fd, uint64_t size)
{
    int why = 0;
    if (!filemap_open_source(&t->map, fd, size, &why))
        report_verbose(t->f->ch->dev->verbose, "%s: %s not mapped (%s): data path read()/write()", t->op, t->o->local_path, strerror(why));
    else
        report_verbose(t->f->ch->dev->verbose, "%s: data path %s", t->op, filemap_path_name(&t->map));
    int rc = transfer_put_loop(t, fd, size);
    filemap_close(&t->map);
    return rc;
}

static int transfer_put_loop(struct transfer *t, int fd, uint64_t size)
{
    uint64_t next = 0, acked = 0;
    int rc = REPORT_EXIT_OK;
    while (!rc && acked < size) {
        for (uint32_t i = 0; i < t->buf_count && next < size && !inflight_full(&t->f->table); i++) {
            struct transfer_buf *b = &t->buf[i];
            if (b->busy)
                continue;
            uint64_t left = size - next;
            *b = (struct transfer_buf){ .slice_offset = b->slice_offset, .file_offset = next, .length = left < t->buf_bytes ? (uint32_t)left : t->buf_bytes };
            uint8_t *dst = slice_at(&t->f->slice, b->slice_offset);
            int err = t->map.base ? filemap_load(&t->map, next, dst, b->length) : transfer_pread_all(fd, dst, b->length, next);
            if (err == -EFAULT && t->map.base) {
                t->local_errno = ENODATA;
                return report_error(REPORT_EXIT_SYSTEM, "reading %s: it was cut below its size %" PRIu64 " while mapped (SIGBUS in the copy at byte %" PRIu64 "): it changed during the %s; run it again",
                                    t->o->local_path, size, next, t->op);
            }
            if (err == -ENODATA) {
                t->local_errno = ENODATA;
                return report_error(REPORT_EXIT_SYSTEM, "reading %s: it ended at byte %" PRIu64 ", before its size %" PRIu64 " when the put began: it changed during the put; run the put again",
                                    t->o->local_path, next, size);
            }
            if (err)
                return transfer_data_error(t, "reading", t->o->local_path, -err);
            next += b->length;
            rc = transfer_send_io(t, VMGMT_MSG_FILE_WRITE, i);
            if (rc)
                return rc;
        }
        struct transfer_buf *b;
        bool finished;
        rc = transfer_take_io(t, VMGMT_MSG_FILE_WRITE, &b, &finished);
        if (rc)
            break;
        if (!finished) {
            rc = transfer_send_io(t, VMGMT_MSG_FILE_WRITE, (uint32_t)(b - t->buf));
            continue;
        }
        acked += b->length;
        b->busy = false;
        transfer_progress(t, acked, size, false);
    }
    return rc;
}

/* Opens the committed host file again and asks its FILE_HASH. */
static int transfer_put_host_hash(struct fileop *f, const char *path, uint8_t host[SHA256_BYTES])
{
    struct vmgmt_file_info info;
    int rc = fileop_open(f, "put", path, VMGMT_FILE_OPEN_READ, 0, 0, &info);
    if (rc)
        return rc;
    rc = fileop_hash(f, "put", path, info.handle, host);
    int close_rc = fileop_close(f, "put", path, info.handle, 0);
    return rc ? rc : close_rc;
}

int transfer_put(struct fileop *f, const struct transfer_options *o)
{
    struct transfer t = { .f = f, .o = o, .op = "put" };
    int fd = open(o->local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return transfer_local_error("cannot open", o->local_path, errno);
    struct stat st;
    int rc;
    if (fstat(fd, &st) < 0) {
        rc = transfer_local_error("cannot stat", o->local_path, errno);
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = report_error(REPORT_EXIT_SYSTEM, "put: %s is not a regular file; put sends regular files only", o->local_path);
        goto close_fd;
    }
    uint64_t size = (uint64_t)st.st_size;
    rc = transfer_plan(&t);
    if (rc)
        goto close_fd;

    t.start_ns = t.last_progress_ns = clock_now_ns();
    struct vmgmt_file_info info;
    rc = fileop_open(f, "put", o->host_path, VMGMT_FILE_OPEN_WRITE, (uint32_t)st.st_mode & 0666u, size, &info);
    if (rc)
        goto close_fd;
    t.handle = info.handle;
    t.handle_open = true;
    rc = transfer_put_data(&t, fd, size);
    if (!rc && signals_stop_requested())
        rc = report_error(REPORT_EXIT_SYSTEM, "interrupted before the commit of %s; channel %u released", o->host_path, f->ch->index);
    if (rc)
        goto discard;
    /* Once COMMIT is sent the outcome is decided on the host (which releases the handle itself if the commit
     * fails): wait for the answer even after SIGINT, to report what happened. */
    t.handle_open = false;
    f->ch->dev->ignore_stop = true;
    rc = fileop_close(f, "put", o->host_path, t.handle, VMGMT_FILE_CLOSE_COMMIT);
    f->ch->dev->ignore_stop = false;
    if (rc)
        goto close_fd;
    uint64_t elapsed_ns = clock_now_ns() - t.start_ns;
    transfer_progress(&t, size, size, true);

    char hex[2 * SHA256_BYTES + 1] = "skipped";
    if (o->sha256) {
        uint8_t host[SHA256_BYTES], guest[SHA256_BYTES];
        rc = transfer_put_host_hash(f, o->host_path, host);
        if (rc)
            goto close_fd;
        int err = sha256_fd(fd, guest);
        if (err) {
            rc = transfer_local_error("reading (to hash)", o->local_path, -err);
            goto close_fd;
        }
        rc = transfer_compare(host, guest, hex, "the host copy is committed but differs; run the put again");
        if (rc)
            goto close_fd;
    }
    transfer_finish_line(&t, size, elapsed_ns, hex, stdout);
    goto close_fd;
discard:
    if (fileop_abandon(f, o->host_path, t.handle))
        report_error(REPORT_EXIT_OK, "put %s: discarded on the host; nothing was committed", o->host_path);
close_fd:
    close(fd);
    return rc;
}

int transfer_pull(struct fileop *f, const char *host_path, uint32_t handle, int fd, const char *local_name, uint64_t size, int *local_errno)
{
    const struct transfer_options o = { .host_path = host_path, .local_path = local_name, .quiet = true };
    struct transfer t = { .f = f, .o = &o, .op = "copy to-guest", .handle = handle, .handle_open = true };
    *local_errno = 0;
    int rc = transfer_plan(&t);
    if (!rc)
        rc = transfer_get_data(&t, fd, local_name, 0, size);
    *local_errno = t.local_errno;
    return rc;
}

int transfer_push(struct fileop *f, const char *host_path, uint32_t handle, int fd, const char *local_name, uint64_t size, int *local_errno)
{
    const struct transfer_options o = { .host_path = host_path, .local_path = local_name, .quiet = true };
    struct transfer t = { .f = f, .o = &o, .op = "copy from-guest", .handle = handle, .handle_open = true };
    *local_errno = 0;
    int rc = transfer_plan(&t);
    if (!rc)
        rc = transfer_put_data(&t, fd, size);
    *local_errno = t.local_errno;
    return rc;
}
