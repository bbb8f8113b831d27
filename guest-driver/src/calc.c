#include "calc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "cli.h"
#include "fileop.h"
#include "report.h"
#include "session.h"

#define CALC_BUFFER_OFFSET SLICE_PATH_AREA_BYTES
#define CALC_MAX_BUFFER_BYTES (1024u * 1024u)

struct calc {
    struct cli_common common;
    const char *function;
    const char *input;   /* path, or "-" for stdin */
    const char *output;  /* path, or "-" for stdout */
    char **args;         /* the function's arguments (argv after FUNCTION) */
    uint32_t argc;
    bool hex;
    bool list;
};

static const char calc_usage[] =
    "usage: vmgmt-guest calc FUNCTION [ARGS...] [-i INPUT] [-o OUTPUT] [--hex] [-d BDF] [-t MS] [-v]\n"
    "       vmgmt-guest calc --list\n"
    "  the host runs FUNCTION (sha256, sha512, crc32c, gzip, gunzip, or a program the host declares) on\n"
    "  INPUT (default stdin, streamed: its size need not be known) and the result goes to OUTPUT (default\n"
    "  stdout). ARGS go to a host program that takes arguments (built-ins take none; put -- before ARGS\n"
    "  that start with -); --hex prints the result as hex (for digests); --list prints the functions this\n"
    "  VM may call, one a line with what it does\n";

static int calc_parse(int argc, char **argv, struct calc *c)
{
    static const struct option longopts[] = {
        { "hex", no_argument, NULL, 'x' }, { "list", no_argument, NULL, 'l' }, { "input", required_argument, NULL, 'i' }, { "output", required_argument, NULL, 'o' },
        { "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    *c = (struct calc){ .common = { .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = 60000 }, .input = "-", .output = "-" };
    optind = 2;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":d:vt:i:o:h", longopts, NULL)) != -1) {
        switch (o) {
        case 'd': c->common.bdf = optarg; break;
        case 'v': c->common.verbose = true; break;
        case 'x': c->hex = true; break;
        case 'l': c->list = true; break;
        case 'i': c->input = optarg; break;
        case 'o': c->output = optarg; break;
        case 't': {
            int rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &c->common.timeout_ms);
            if (rc)
                return rc;
            break;
        }
        case 'h': fputs(calc_usage, stdout); return -1;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s' (put -- before arguments for the function that start with -)", argv[optind - 1]);
        }
    }
    if (c->list) {
        if (optind < argc)
            return cli_usage_error("calc --list takes no arguments, got '%s'", argv[optind]);
        return REPORT_EXIT_OK;
    }
    if (optind >= argc)
        return cli_usage_error("calc needs a FUNCTION (or --list)%s", "");
    c->function = argv[optind++];
    if (strlen(c->function) == 0 || strlen(c->function) > VMGMT_CALC_LIMIT_MAX_FUNCTION_NAME_BYTES)
        return cli_usage_error("function name '%s' must be 1 to 64 bytes", c->function);
    c->args = argv + optind;
    c->argc = (uint32_t)(argc - optind);
    size_t bytes = 0;
    for (uint32_t i = 0; i < c->argc; i++)
        bytes += strlen(c->args[i]) + 1;
    if (c->argc > VMGMT_CALC_LIMIT_MAX_ARGS || bytes > VMGMT_CALC_LIMIT_MAX_ARGS_BYTES) {
        char what[128];
        snprintf(what, sizeof(what), "%u arguments in %zu bytes; the host takes at most %u in %u bytes with their NULs", c->argc, bytes, (unsigned)VMGMT_CALC_LIMIT_MAX_ARGS,
                 (unsigned)VMGMT_CALC_LIMIT_MAX_ARGS_BYTES);
        return cli_usage_error("the function's arguments are too many or too long (%s)", what);
    }
    return REPORT_EXIT_OK;
}

/* A host program failed: its exit status (or signal) and the start of its stderr, in words. The payload is
 * the core's (untrusted): lengths are checked against what arrived, bytes that are not printable shown as '?'. */
static int calc_program_failed(const struct inflight_answer *a, const char *function)
{
    struct vmgmt_calc_failure fl;
    if (a->length < sizeof(fl))
        return report_error(REPORT_EXIT_REFUSED, "calc %s: %s (status %d)", function, vmgmt_status_text(a->status), a->status);
    memcpy(&fl, a->payload, sizeof(fl));
    uint32_t n = fl.stderr_len;
    if (n > a->length - sizeof(fl))
        n = a->length - (uint32_t)sizeof(fl);
    char text[VMGMT_LIMIT_MAX_SLOT_BYTES + 1];
    for (uint32_t i = 0; i < n; i++) {
        unsigned char ch = a->payload[sizeof(fl) + i];
        text[i] = (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f) || ch >= 0x80) ? (char)ch : '?';
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        n--;
    text[n] = '\0';
    char how[64];
    if (fl.signal)
        snprintf(how, sizeof(how), "killed by signal %u%s", fl.signal, fl.signal == 9 ? " (SIGKILL)" : "");
    else
        snprintf(how, sizeof(how), "exit status %d", fl.exit_code);
    if (fl.stderr_total == 0)
        return report_error(REPORT_EXIT_REFUSED, "calc %s: %s (status %d): %s; it wrote nothing to stderr", function, vmgmt_status_text(a->status), a->status, how);
    return report_error(REPORT_EXIT_REFUSED, "calc %s: %s (status %d): %s; its stderr (first %u of %u bytes):\n%s", function, vmgmt_status_text(a->status), a->status, how, n,
                        fl.stderr_total, text);
}

/* An answer checked: a failed program's report, else status OK with at least `need` payload bytes. */
static int calc_check(struct fileop *f, const struct inflight_answer *a, uint32_t need, const char *function)
{
    if (a->status == VMGMT_ST_CALC_PROGRAM_FAILED) {
        f->refused_status = a->status;
        return calc_program_failed(a, function);
    }
    return fileop_expect(f, a, need, "calc", function);
}

/* One request and its checked answer. */
static int calc_call(struct fileop *f, uint16_t type, const void *req, uint32_t len, struct inflight_answer *a, uint32_t need, const char *function)
{
    char during[96];
    snprintf(during, sizeof(during), "%s of %.64s", inflight_type_name(type), function);
    int rc = inflight_call(&f->table, type, req, len, a, during);
    if (rc)
        return rc;
    return calc_check(f, a, need, function);
}

/* The channel in CALC mode, and the room for a buffer after the path area (at most max_bytes). */
static int calc_start(struct fileop *f, struct session *s, const struct calc *c, uint32_t max_bytes, uint32_t *room)
{
    int rc = fileop_start_in_mode(f, &s->ch, c->common.timeout_ms, VMGMT_MODE_CALC, "calc");
    if (rc)
        return rc;
    if (f->slice.size <= CALC_BUFFER_OFFSET)
        return report_error(REPORT_EXIT_PROTOCOL, "calc: the data slice of %u bytes has no room for a buffer", f->slice.size);
    *room = f->slice.size - CALC_BUFFER_OFFSET;
    if (*room > max_bytes)
        *room = max_bytes;
    return REPORT_EXIT_OK;
}

/* calc --list: CALC_LIST pages into the slice, each vmgmt_calc_entry checked against the bytes the core
 * said it wrote before it is printed. */
static int calc_list_body(struct session *s, struct calc *c)
{
    struct fileop f;
    uint32_t room = 0;
    int rc = calc_start(&f, s, c, 65536, &room);
    if (rc)
        return rc;
    static uint8_t copy[65536];
    uint32_t cookie = 0, total = 0;
    do {
        struct vmgmt_calc_list req = { .buf_offset = CALC_BUFFER_OFFSET, .buf_len = room, .cookie = cookie };
        struct inflight_answer a;
        rc = calc_call(&f, VMGMT_MSG_CALC_LIST, &req, sizeof(req), &a, sizeof(struct vmgmt_calc_list_result), "--list");
        if (rc)
            return rc;
        struct vmgmt_calc_list_result res;
        memcpy(&res, a.payload, sizeof(res));
        if (res.bytes > room || (res.next_cookie != 0 && res.next_cookie <= cookie))
            return report_error(REPORT_EXIT_PROTOCOL, "calc --list: the core answered %u bytes (room %u) and next cookie %u after %u", res.bytes, room, res.next_cookie, cookie);
        if (!slice_copy_out(&f.slice, CALC_BUFFER_OFFSET, res.bytes, copy))
            return report_error(REPORT_EXIT_PROTOCOL, "calc --list: %u bytes do not fit the data slice", res.bytes);
        uint32_t at = 0;
        for (uint32_t i = 0; i < res.count; i++) {
            struct vmgmt_calc_entry e;
            if (res.bytes - at < sizeof(e))
                return report_error(REPORT_EXIT_PROTOCOL, "calc --list: entry %u of %u is cut off at byte %u of %u", i, res.count, at, res.bytes);
            memcpy(&e, copy + at, sizeof(e));
            uint32_t size = ((uint32_t)sizeof(e) + e.name_len + e.desc_len + 3u) & ~3u;
            if (e.name_len == 0 || size > res.bytes - at)
                return report_error(REPORT_EXIT_PROTOCOL, "calc --list: entry %u (name %u, description %u bytes) does not fit the %u bytes answered", i, e.name_len, e.desc_len, res.bytes);
            const char *name = (const char *)copy + at + sizeof(e);
            const char *desc = name + e.name_len;
            char line[VMGMT_CALC_LIMIT_MAX_FUNCTION_NAME_BYTES + VMGMT_CALC_LIMIT_MAX_DESCRIPTION_BYTES + 64];
            int nlen = e.name_len > VMGMT_CALC_LIMIT_MAX_FUNCTION_NAME_BYTES ? VMGMT_CALC_LIMIT_MAX_FUNCTION_NAME_BYTES : e.name_len;
            int dlen = e.desc_len > VMGMT_CALC_LIMIT_MAX_DESCRIPTION_BYTES ? VMGMT_CALC_LIMIT_MAX_DESCRIPTION_BYTES : e.desc_len;
            int len = snprintf(line, sizeof(line), "%-16.*s %-8s %.*s", nlen, name, e.kind == VMGMT_CALC_KIND_PROGRAM ? "program" : "built-in", dlen, desc);
            for (int k = 0; k < len && k < (int)sizeof(line); k++)
                if (iscntrl((unsigned char)line[k]))
                    line[k] = '?';
            printf("%s\n", line);
            at += size;
            total++;
        }
        cookie = res.next_cookie;
    } while (cookie != 0);
    fflush(stdout);
    report_verbose(c->common.verbose, "calc --list: %u functions", total);
    return REPORT_EXIT_OK;
}

/* The input: a regular file (named, or stdin redirected from one) by its size from where it stands, anything
 * else (a pipe, a device) streamed to its end. */
static int calc_open_input(const struct calc *c, int *fd, bool *stream, uint64_t *size, off_t *base)
{
    *fd = strcmp(c->input, "-") == 0 ? STDIN_FILENO : open(c->input, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return report_error(REPORT_EXIT_SYSTEM, "calc: cannot read %s: %s", c->input, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0)
        return report_error(REPORT_EXIT_SYSTEM, "calc: cannot stat %s: %s", c->input, strerror(errno));
    *stream = !S_ISREG(st.st_mode);
    *base = 0;
    if (!*stream && *fd == STDIN_FILENO) {
        *base = lseek(*fd, 0, SEEK_CUR);
        if (*base < 0 || *base > st.st_size)
            *base = st.st_size;
    }
    *size = *stream ? 0 : (uint64_t)(st.st_size - *base);
    if (*size > VMGMT_CALC_LIMIT_MAX_JOB_BYTES)
        return report_error(REPORT_EXIT_REFUSED, "calc: %s is %" PRIu64 " bytes; the host takes at most %u", c->input, *size, (unsigned)VMGMT_CALC_LIMIT_MAX_JOB_BYTES);
    return REPORT_EXIT_OK;
}

/* Up to `want` bytes of input: by offset from a file, or as much of a stream as comes before its end. */
static ssize_t calc_read(int fd, bool stream, uint8_t *p, uint32_t want, off_t at)
{
    if (!stream)
        return pread(fd, p, want, at);
    uint32_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, p + got, want - got);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (uint32_t)n;
    }
    return got;
}

/* CALC_INPUT, two halves of the buffer in turn: the host takes one half while the next is read. */
static int calc_send_input(struct fileop *f, const struct calc *c, uint32_t job, int in, bool stream, uint64_t size, off_t base, uint8_t *buf, uint32_t buf_bytes,
                           uint64_t *given)
{
    uint32_t half = (buf_bytes / 2) & ~4095u;
    if (half == 0)
        half = buf_bytes;
    uint32_t halves = half == buf_bytes ? 1 : 2;
    bool busy[2] = { false, false };
    uint32_t next = 0, outstanding = 0;
    bool end = !stream && size == 0;
    uint64_t at = 0;
    while (!end || outstanding > 0) {
        if (!end && !busy[next]) {
            uint32_t want = half;
            if (!stream && size - at < want)
                want = (uint32_t)(size - at);
            ssize_t n = calc_read(in, stream, buf + (size_t)next * half, want, base + (off_t)at);
            if (n < 0)
                return report_error(REPORT_EXIT_SYSTEM, "calc: cannot read %s at %" PRIu64 ": %s", c->input, at, strerror(errno));
            if (n == 0 && !stream)
                return report_error(REPORT_EXIT_SYSTEM, "calc: %s became shorter while it was read (%" PRIu64 " of %" PRIu64 " bytes)", c->input, at, size);
            if (n == 0) {
                end = true;
                continue;
            }
            if (at + (uint64_t)n > VMGMT_CALC_LIMIT_MAX_JOB_BYTES)
                return report_error(REPORT_EXIT_REFUSED, "calc: %s is longer than the %u bytes the host takes", c->input, (unsigned)VMGMT_CALC_LIMIT_MAX_JOB_BYTES);
            struct vmgmt_calc_io io = { .job = job, .length = (uint32_t)n, .offset = at, .buf_offset = CALC_BUFFER_OFFSET + next * half };
            char during[96];
            snprintf(during, sizeof(during), "CALC_INPUT of %.64s", c->function);
            int rc = inflight_send(&f->table, VMGMT_MSG_CALC_INPUT, &io, sizeof(io), next, during, NULL);
            if (rc)
                return rc;
            busy[next] = true;
            outstanding++;
            at += (uint64_t)n;
            if (!stream && at == size)
                end = true;
            if ((uint32_t)n < want && stream)
                end = true; /* the stream ended inside this read */
            next = (next + 1) % halves;
            continue;
        }
        struct inflight_answer a;
        char during[96];
        snprintf(during, sizeof(during), "CALC_INPUT of %.64s", c->function);
        int rc = inflight_next(&f->table, &a, during);
        if (rc)
            return rc;
        rc = calc_check(f, &a, sizeof(struct vmgmt_calc_io_result), c->function);
        if (rc)
            return rc;
        if (a.type != VMGMT_MSG_CALC_INPUT || a.tag >= halves)
            return report_error(REPORT_EXIT_PROTOCOL, "calc: an answer of type 0x%04x while input was sent", a.type);
        busy[a.tag] = false;
        outstanding--;
    }
    *given = at;
    return REPORT_EXIT_OK;
}

/* The function's arguments, NUL-terminated one after another at offset 0 of the slice. */
static int calc_put_args(struct fileop *f, const struct calc *c, uint32_t *len)
{
    uint32_t at = 0;
    for (uint32_t i = 0; i < c->argc; i++) {
        uint32_t n = (uint32_t)strlen(c->args[i]) + 1;
        if (!slice_contains(&f->slice, at, n) || at + n > CALC_BUFFER_OFFSET)
            return report_error(REPORT_EXIT_USAGE, "calc: the function's arguments do not fit the %u bytes set aside for them", (unsigned)CALC_BUFFER_OFFSET);
        memcpy(slice_at(&f->slice, at), c->args[i], n);
        at += n;
    }
    *len = at;
    return REPORT_EXIT_OK;
}

static int calc_write_all(int fd, const uint8_t *p, size_t n, const char *what)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return report_error(REPORT_EXIT_SYSTEM, "calc: cannot write %s: %s", what, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return REPORT_EXIT_OK;
}

static int calc_body(struct session *s, void *ctx)
{
    struct calc *c = ctx;
    if (c->list)
        return calc_list_body(s, c);
    struct fileop f;
    uint32_t buf_bytes = 0;
    int rc = calc_start(&f, s, c, CALC_MAX_BUFFER_BYTES, &buf_bytes);
    if (rc)
        return rc;
    uint8_t *buf = slice_at(&f.slice, CALC_BUFFER_OFFSET);

    int in = -1, out = -1;
    uint64_t size = 0, given = 0;
    bool stream = false;
    off_t base = 0;
    uint32_t args_len = 0;
    rc = calc_open_input(c, &in, &stream, &size, &base);
    if (!rc)
        rc = calc_put_args(&f, c, &args_len);
    if (rc)
        goto close_in;
    uint64_t t0 = clock_now_ns();

    uint8_t begin[sizeof(struct vmgmt_calc_begin) + VMGMT_CALC_LIMIT_MAX_FUNCTION_NAME_BYTES];
    struct vmgmt_calc_begin *b = (struct vmgmt_calc_begin *)begin;
    uint32_t name_len = (uint32_t)strlen(c->function);
    *b = (struct vmgmt_calc_begin){
        .name_len = name_len, .flags = stream ? VMGMT_CALC_FLAG_STREAM_INPUT : 0, .input_size = size, .argc = c->argc, .args_len = args_len, .args_offset = 0,
    };
    memcpy(begin + sizeof(*b), c->function, name_len);
    struct inflight_answer a;
    rc = calc_call(&f, VMGMT_MSG_CALC_BEGIN, begin, (uint32_t)sizeof(*b) + name_len, &a, sizeof(struct vmgmt_calc_job), c->function);
    if (rc)
        goto close_in;
    struct vmgmt_calc_job job;
    memcpy(&job, a.payload, sizeof(job));

    rc = calc_send_input(&f, c, job.job, in, stream, size, base, buf, buf_bytes, &given);
    if (rc)
        goto end_job;
    struct vmgmt_calc_job run = { .job = job.job };
    rc = calc_call(&f, VMGMT_MSG_CALC_RUN, &run, sizeof(run), &a, sizeof(struct vmgmt_calc_result), c->function);
    if (rc)
        goto end_job;
    struct vmgmt_calc_result result;
    memcpy(&result, a.payload, sizeof(result));

    out = strcmp(c->output, "-") == 0 ? STDOUT_FILENO : open(c->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = report_error(REPORT_EXIT_SYSTEM, "calc: cannot write %s: %s", c->output, strerror(errno));
        goto end_job;
    }
    for (uint64_t at = 0; at < result.output_size;) {
        struct vmgmt_calc_io io = { .job = job.job, .length = buf_bytes, .offset = at, .buf_offset = CALC_BUFFER_OFFSET };
        rc = calc_call(&f, VMGMT_MSG_CALC_OUTPUT, &io, sizeof(io), &a, sizeof(struct vmgmt_calc_io_result), c->function);
        if (rc)
            goto end_job;
        struct vmgmt_calc_io_result got;
        memcpy(&got, a.payload, sizeof(got));
        if (got.bytes == 0 || got.bytes > buf_bytes || got.bytes > result.output_size - at) {
            rc = report_error(REPORT_EXIT_PROTOCOL, "calc: the core answered %u output bytes at %" PRIu64 " of %" PRIu64, got.bytes, at, (uint64_t)result.output_size);
            goto end_job;
        }
        if (c->hex) {
            char hex[2 * 4096 + 1];
            for (uint32_t i = 0; i < got.bytes; i += 4096) {
                uint32_t k = got.bytes - i < 4096 ? got.bytes - i : 4096;
                for (uint32_t j = 0; j < k; j++)
                    snprintf(hex + 2 * j, 3, "%02x", buf[i + j]);
                rc = calc_write_all(out, (const uint8_t *)hex, 2 * (size_t)k, c->output);
                if (rc)
                    goto end_job;
            }
        } else {
            rc = calc_write_all(out, buf, got.bytes, c->output);
            if (rc)
                goto end_job;
        }
        at += got.bytes;
    }
    if (c->hex)
        rc = calc_write_all(out, (const uint8_t *)"\n", 1, c->output);
    double ms = (double)(clock_now_ns() - t0) / 1e6;
    fprintf(stderr, "calc: function=%s in=%" PRIu64 " out=%" PRIu64 " ms=%.1f\n", c->function, given, (uint64_t)result.output_size, ms);

end_job:;
    struct vmgmt_calc_job end = { .job = job.job };
    struct inflight_answer e;
    if (!f.table.broken)
        (void)calc_call(&f, VMGMT_MSG_CALC_END, &end, sizeof(end), &e, 0, c->function);
    if (out >= 0 && out != STDOUT_FILENO)
        close(out);
close_in:
    if (in > STDIN_FILENO)
        close(in);
    return rc;
}

int calc_main(int argc, char **argv)
{
    struct calc c;
    int rc = calc_parse(argc, argv, &c);
    if (rc == -1)
        return REPORT_EXIT_OK;
    if (rc)
        return rc;
    return session_run(&c.common, calc_body, &c);
}
