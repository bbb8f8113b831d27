#include "fileop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define FILEOP_CLEANUP_TIMEOUT_MS 5000u

const char *fileop_type_name(uint32_t type)
{
    switch (type) {
    case VMGMT_FILE_TYPE_FILE: return "file";
    case VMGMT_FILE_TYPE_DIR: return "dir";
    case VMGMT_FILE_TYPE_SYMLINK: return "symlink";
    case VMGMT_FILE_TYPE_OTHER: return "other";
    default: return "unknown";
    }
}

int fileop_refused(struct fileop *f, uint16_t type, int32_t status, const char *op, const char *path)
{
    f->refused_status = status;
    if (status >= VMGMT_ST_UNKNOWN_TYPE && status <= VMGMT_ST_BAD_RESPONSE)
        return report_error(REPORT_EXIT_PROTOCOL, "the management core answered %s for %s %s on channel %u with status %d: %s", inflight_type_name(type),
                            op, path, f->ch->index, status, vmgmt_status_text(status));
    return report_error(REPORT_EXIT_REFUSED, "%s %s: %s (status %d)", op, path, vmgmt_status_text(status), status);
}

int fileop_expect(struct fileop *f, const struct inflight_answer *a, uint32_t need, const char *op, const char *path)
{
    if (a->status != VMGMT_ST_OK)
        return fileop_refused(f, a->type, a->status, op, path);
    if (a->length < need)
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u: the answer to %s for %s %s carries %u payload bytes, expected %u; restart the vmgmt daemon",
                            f->ch->index, inflight_type_name(a->type), op, path, a->length, need);
    return REPORT_EXIT_OK;
}

int fileop_start_in_mode(struct fileop *f, struct channel *ch, uint32_t timeout_ms, uint32_t mode, const char *mode_name)
{
    f->ch = ch;
    f->refused_status = VMGMT_ST_OK;
    inflight_init(&f->table, ch, timeout_ms);
    slice_attach(&f->slice, ch->dev, ch->index);
    struct vmgmt_set_mode req = { .mode = mode };
    struct inflight_answer a;
    char during[48], op[48];
    snprintf(during, sizeof(during), "SET_MODE %s", mode_name);
    int rc = inflight_call(&f->table, VMGMT_MSG_SET_MODE, &req, sizeof(req), &a, during);
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK) {
        char where[32];
        snprintf(where, sizeof(where), "on channel %u", ch->index);
        snprintf(op, sizeof(op), "set mode %s", mode_name);
        return fileop_refused(f, a.type, a.status, op, where);
    }
    report_verbose(ch->dev->verbose, "channel %u: mode %s, data slice %u bytes", ch->index, mode_name, f->slice.size);
    return REPORT_EXIT_OK;
}

int fileop_start(struct fileop *f, struct channel *ch, uint32_t timeout_ms)
{
    return fileop_start_in_mode(f, ch, timeout_ms, VMGMT_MODE_FILE, "file");
}

static void fileop_during(char *buf, size_t cap, uint16_t type, const char *path)
{
    snprintf(buf, cap, "%s of %.200s", inflight_type_name(type), path);
}

/* Puts the path in the path area, sends the request, waits for and checks the answer. */
static int fileop_path_call(struct fileop *f, uint16_t type, const char *op, const char *path, void *req, uint32_t req_bytes,
                            uint32_t *path_len_field, struct inflight_answer *a, uint32_t need)
{
    char during[256];
    int rc = slice_put_path(&f->slice, path, "the host path", path_len_field);
    if (rc)
        return rc;
    fileop_during(during, sizeof(during), type, path);
    rc = inflight_call(&f->table, type, req, req_bytes, a, during);
    if (rc)
        return rc;
    return fileop_expect(f, a, need, op, path);
}

int fileop_open(struct fileop *f, const char *op, const char *path, uint32_t flags, uint32_t mode, uint64_t size, struct vmgmt_file_info *info)
{
    struct vmgmt_file_open req = { .path_offset = SLICE_PATH_OFFSET, .flags = flags, .mode = mode, .size = size };
    struct inflight_answer a;
    int rc = fileop_path_call(f, VMGMT_MSG_FILE_OPEN, op, path, &req, sizeof(req), &req.path_len, &a, sizeof(*info));
    if (rc)
        return rc;
    memcpy(info, a.payload, sizeof(*info));
    return REPORT_EXIT_OK;
}

int fileop_stat(struct fileop *f, const char *op, const char *path, struct vmgmt_file_info *info)
{
    struct vmgmt_file_path req = { .path_offset = SLICE_PATH_OFFSET };
    struct inflight_answer a;
    int rc = fileop_path_call(f, VMGMT_MSG_FILE_STAT, op, path, &req, sizeof(req), &req.path_len, &a, sizeof(*info));
    if (rc)
        return rc;
    memcpy(info, a.payload, sizeof(*info));
    return REPORT_EXIT_OK;
}

int fileop_mkdir(struct fileop *f, const char *op, const char *path, uint32_t mode)
{
    struct vmgmt_file_path req = { .path_offset = SLICE_PATH_OFFSET, .arg = mode };
    struct inflight_answer a;
    return fileop_path_call(f, VMGMT_MSG_FILE_MKDIR, op, path, &req, sizeof(req), &req.path_len, &a, 0);
}

int fileop_remove(struct fileop *f, const char *op, const char *path, uint32_t flags)
{
    struct vmgmt_file_path req = { .path_offset = SLICE_PATH_OFFSET, .arg = flags };
    struct inflight_answer a;
    return fileop_path_call(f, VMGMT_MSG_FILE_REMOVE, op, path, &req, sizeof(req), &req.path_len, &a, 0);
}

static int fileop_handle_call(struct fileop *f, uint16_t type, const char *op, const char *path, uint32_t handle, uint32_t flags,
                              struct inflight_answer *a, uint32_t need)
{
    char during[256];
    struct vmgmt_file_handle req = { .handle = handle, .flags = flags };
    fileop_during(during, sizeof(during), type, path);
    int rc = inflight_call(&f->table, type, &req, sizeof(req), a, during);
    if (rc)
        return rc;
    return fileop_expect(f, a, need, op, path);
}

int fileop_close(struct fileop *f, const char *op, const char *path, uint32_t handle, uint32_t flags)
{
    struct inflight_answer a;
    return fileop_handle_call(f, VMGMT_MSG_FILE_CLOSE, op, path, handle, flags, &a, 0);
}

int fileop_hash(struct fileop *f, const char *op, const char *path, uint32_t handle, uint8_t digest[SHA256_BYTES])
{
    struct inflight_answer a;
    int rc = fileop_handle_call(f, VMGMT_MSG_FILE_HASH, op, path, handle, 0, &a, VMGMT_FILE_HASH_BYTES);
    if (rc)
        return rc;
    memcpy(digest, a.payload, SHA256_BYTES);
    return REPORT_EXIT_OK;
}

bool fileop_abandon(struct fileop *f, const char *path, uint32_t handle)
{
    struct vmgmt_dev *dev = f->ch->dev;
    if (f->table.broken) {
        report_verbose(dev->verbose, "not closing handle %u of %s: channel %u is unusable; the core drops the handle when the channel is reset",
                       handle, path, f->ch->index);
        return false;
    }
    bool saved_ignore_stop = dev->ignore_stop;
    uint32_t saved_timeout = f->table.timeout_ms;
    bool closed = false;
    dev->ignore_stop = true;
    f->table.timeout_ms = FILEOP_CLEANUP_TIMEOUT_MS;
    if (!inflight_drain(&f->table, FILEOP_CLEANUP_TIMEOUT_MS)) {
        report_verbose(dev->verbose, "not closing handle %u of %s: outstanding answers did not arrive within %u ms", handle, path,
                       FILEOP_CLEANUP_TIMEOUT_MS);
        goto restore;
    }
    struct vmgmt_file_handle req = { .handle = handle, .flags = 0 };
    struct inflight_answer a;
    if (inflight_call(&f->table, VMGMT_MSG_FILE_CLOSE, &req, sizeof(req), &a, "FILE_CLOSE (discard)") == REPORT_EXIT_OK) {
        report_verbose(dev->verbose, "closed handle %u of %s without COMMIT: status %d (%s)", handle, path, a.status, vmgmt_status_text(a.status));
        closed = a.status == VMGMT_ST_OK;
    }
restore:
    f->table.timeout_ms = saved_timeout;
    dev->ignore_stop = saved_ignore_stop;
    return closed;
}

static int fileop_list_violation(const struct fileop *f, const char *op, const char *path, const char *why, uint32_t value)
{
    return report_error(REPORT_EXIT_PROTOCOL, "protocol violation by the host during %s %s on channel %u: FILE_LIST answer %s (%u); restart the vmgmt daemon",
                        op, path, f->ch->index, why, value);
}

/* Walks one page of entries (already copied out of the slice). */
static int fileop_list_page(const struct fileop *f, const char *op, const char *path, const uint8_t *page, const struct vmgmt_file_list_result *res,
                            fileop_entry_fn fn, void *arg)
{
    uint64_t at = 0;
    uint32_t seen = 0;
    while (at < res->bytes) {
        struct vmgmt_dirent e;
        char name[65536 + 1];
        if (res->bytes - at < sizeof(e))
            return fileop_list_violation(f, op, path, "has an entry header cut off at byte", (uint32_t)at);
        memcpy(&e, page + at, sizeof(e));
        if (e.name_len == 0 || e.name_len > res->bytes - at - sizeof(e))
            return fileop_list_violation(f, op, path, "has an entry whose name runs past the used bytes, name_len", e.name_len);
        memcpy(name, page + at + sizeof(e), e.name_len);
        name[e.name_len] = '\0';
        if (strlen(name) != e.name_len || strchr(name, '/'))
            return fileop_list_violation(f, op, path, "has an entry name with a NUL or '/', at byte", (uint32_t)at);
        if (e.type < VMGMT_FILE_TYPE_FILE || e.type > VMGMT_FILE_TYPE_OTHER)
            return fileop_list_violation(f, op, path, "has an entry of unknown type", e.type);
        seen++;
        if (seen > res->count)
            return fileop_list_violation(f, op, path, "holds more entries than its count", res->count);
        int rc = fn(arg, &e, name);
        if (rc)
            return rc;
        at += (sizeof(e) + e.name_len + 7u) & ~(uint64_t)7u;
    }
    if (seen != res->count)
        return fileop_list_violation(f, op, path, "holds fewer entries than its count", res->count);
    return REPORT_EXIT_OK;
}

int fileop_list(struct fileop *f, const char *op, const char *path, fileop_entry_fn fn, void *arg)
{
    uint32_t room = f->slice.size - SLICE_PATH_AREA_BYTES;
    uint32_t buf_len = room < FILEOP_LIST_MAX_BUFFER_BYTES ? room : FILEOP_LIST_MAX_BUFFER_BYTES;
    uint8_t *page = malloc(buf_len);
    if (!page)
        return report_error(REPORT_EXIT_SYSTEM, "out of memory for a %u-byte directory listing buffer", buf_len);
    int rc;
    uint32_t cookie = 0;
    do {
        struct vmgmt_file_list req = { .path_offset = SLICE_PATH_OFFSET, .buf_offset = SLICE_PATH_AREA_BYTES, .buf_len = buf_len, .cookie = cookie };
        struct inflight_answer a;
        struct vmgmt_file_list_result res;
        rc = fileop_path_call(f, VMGMT_MSG_FILE_LIST, op, path, &req, sizeof(req), &req.path_len, &a, sizeof(res));
        if (rc)
            goto free_page;
        memcpy(&res, a.payload, sizeof(res));
        if (res.bytes > buf_len) {
            rc = fileop_list_violation(f, op, path, "uses more bytes than the buffer has", res.bytes);
            goto free_page;
        }
        if (res.next_cookie != 0 && (res.next_cookie <= cookie || res.count == 0)) {
            rc = fileop_list_violation(f, op, path, "does not advance: next_cookie", res.next_cookie);
            goto free_page;
        }
        slice_copy_out(&f->slice, SLICE_PATH_AREA_BYTES, res.bytes, page);
        rc = fileop_list_page(f, op, path, page, &res, fn, arg);
        if (rc)
            goto free_page;
        cookie = res.next_cookie;
    } while (cookie != 0);
free_page:
    free(page);
    return rc;
}
