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
    bool hex;
    bool list;
};

static const char calc_usage[] =
    "usage: vmgmt-guest calc FUNCTION [INPUT|-] [OUTPUT|-] [--hex] [-d BDF] [-t MS] [-v]\n"
    "       vmgmt-guest calc --list\n"
    "  the host runs FUNCTION (sha256, sha512, crc32c, gzip, gunzip, or a program the host declares) on INPUT\n"
    "  (default stdin) and the result goes to OUTPUT (default stdout); --hex prints the result as hex (for\n"
    "  digests); --list prints the functions this VM may call, one a line with what it does\n";

static int calc_parse(int argc, char **argv, struct calc *c)
{
    static const struct option longopts[] = {
        { "hex", no_argument, NULL, 'x' }, { "list", no_argument, NULL, 'l' }, { "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    *c = (struct calc){ .common = { .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = 60000 }, .input = "-", .output = "-" };
    optind = 2;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":d:vt:h", longopts, NULL)) != -1) {
        switch (o) {
        case 'd': c->common.bdf = optarg; break;
        case 'v': c->common.verbose = true; break;
        case 'x': c->hex = true; break;
        case 'l': c->list = true; break;
        case 't': {
            int rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &c->common.timeout_ms);
            if (rc)
                return rc;
            break;
        }
        case 'h': fputs(calc_usage, stdout); return -1;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
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
    if (optind < argc)
        c->input = argv[optind++];
    if (optind < argc)
        c->output = argv[optind++];
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
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

/* One request and its checked answer (status OK, at least `need` payload bytes). */
static int calc_call(struct fileop *f, uint16_t type, const void *req, uint32_t len, struct inflight_answer *a, uint32_t need, const char *function)
{
    char during[96];
    snprintf(during, sizeof(during), "%s of %.64s", inflight_type_name(type), function);
    int rc = inflight_call(&f->table, type, req, len, a, during);
    if (rc)
        return rc;
    if (a->status == VMGMT_ST_CALC_PROGRAM_FAILED) {
        f->refused_status = a->status;
        return calc_program_failed(a, function);
    }
    return fileop_expect(f, a, need, "calc", function);
}

/* calc --list: CALC_LIST pages into the slice, each vmgmt_calc_entry checked against the bytes the core
 * said it wrote before it is printed. */
static int calc_list_body(struct session *s, struct calc *c)
{
    struct fileop f;
    int rc = fileop_start_in_mode(&f, &s->ch, c->common.timeout_ms, VMGMT_MODE_CALC, "calc");
    if (rc)
        return rc;
    if (f.slice.size <= CALC_BUFFER_OFFSET)
        return report_error(REPORT_EXIT_PROTOCOL, "calc: the data slice of %u bytes has no room for a buffer", f.slice.size);
    uint32_t room = f.slice.size - CALC_BUFFER_OFFSET;
    if (room > 65536)
        room = 65536;
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

/* The whole input, up to the host's limit: from a file by its size, from stdin into a temp file first. */
static int calc_open_input(const struct calc *c, int *fd, uint64_t *size)
{
    if (strcmp(c->input, "-") != 0) {
        *fd = open(c->input, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
            return report_error(REPORT_EXIT_SYSTEM, "calc: cannot read %s: %s", c->input, strerror(errno));
    } else {
        /* The host needs the size up front: stdin is spooled into an unlinked temp file. */
        *fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (*fd < 0)
            return report_error(REPORT_EXIT_SYSTEM, "calc: cannot make a temp file in /tmp for stdin: %s", strerror(errno));
        char buf[65536];
        for (;;) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n == 0)
                break;
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return report_error(REPORT_EXIT_SYSTEM, "calc: cannot read stdin: %s", strerror(errno));
            }
            for (ssize_t w = 0; w < n;) {
                ssize_t k = write(*fd, buf + w, (size_t)(n - w));
                if (k < 0)
                    return report_error(REPORT_EXIT_SYSTEM, "calc: cannot spool stdin: %s", strerror(errno));
                w += k;
            }
        }
    }
    struct stat st;
    if (fstat(*fd, &st) != 0)
        return report_error(REPORT_EXIT_SYSTEM, "calc: cannot stat %s: %s", c->input, strerror(errno));
    if ((uint64_t)st.st_size > VMGMT_CALC_LIMIT_MAX_JOB_BYTES)
        return report_error(REPORT_EXIT_REFUSED, "calc: %s is %" PRIu64 " bytes; the host takes at most %u", c->input, (uint64_t)st.st_size, (unsigned)VMGMT_CALC_LIMIT_MAX_JOB_BYTES);
    *size = (uint64_t)st.st_size;
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
    int rc = fileop_start_in_mode(&f, &s->ch, c->common.timeout_ms, VMGMT_MODE_CALC, "calc");
    if (rc)
        return rc;
    if (f.slice.size <= CALC_BUFFER_OFFSET)
        return report_error(REPORT_EXIT_PROTOCOL, "calc: the data slice of %u bytes has no room for a buffer", f.slice.size);
    uint32_t buf_bytes = f.slice.size - CALC_BUFFER_OFFSET;
    if (buf_bytes > CALC_MAX_BUFFER_BYTES)
        buf_bytes = CALC_MAX_BUFFER_BYTES;
    uint8_t *buf = slice_at(&f.slice, CALC_BUFFER_OFFSET);

    int in = -1, out = -1;
    uint64_t size = 0;
    rc = calc_open_input(c, &in, &size);
    if (rc)
        goto close_in;
    uint64_t t0 = clock_now_ns();

    uint8_t begin[sizeof(struct vmgmt_calc_begin) + VMGMT_CALC_LIMIT_MAX_FUNCTION_NAME_BYTES];
    struct vmgmt_calc_begin *b = (struct vmgmt_calc_begin *)begin;
    uint32_t name_len = (uint32_t)strlen(c->function);
    *b = (struct vmgmt_calc_begin){ .name_len = name_len, .input_size = size };
    memcpy(begin + sizeof(*b), c->function, name_len);
    struct inflight_answer a;
    rc = calc_call(&f, VMGMT_MSG_CALC_BEGIN, begin, (uint32_t)sizeof(*b) + name_len, &a, sizeof(struct vmgmt_calc_job), c->function);
    if (rc)
        goto close_in;
    struct vmgmt_calc_job job;
    memcpy(&job, a.payload, sizeof(job));

    for (uint64_t at = 0; at < size;) {
        uint32_t want = size - at < buf_bytes ? (uint32_t)(size - at) : buf_bytes;
        ssize_t n = pread(in, buf, want, (off_t)at);
        if (n <= 0) {
            rc = report_error(REPORT_EXIT_SYSTEM, "calc: cannot read %s at %" PRIu64 ": %s", c->input, at, n == 0 ? "it became shorter" : strerror(errno));
            goto end_job;
        }
        struct vmgmt_calc_io io = { .job = job.job, .length = (uint32_t)n, .offset = at, .buf_offset = CALC_BUFFER_OFFSET };
        rc = calc_call(&f, VMGMT_MSG_CALC_INPUT, &io, sizeof(io), &a, sizeof(struct vmgmt_calc_io_result), c->function);
        if (rc)
            goto end_job;
        at += (uint64_t)n;
    }
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
    fprintf(stderr, "calc: function=%s in=%" PRIu64 " out=%" PRIu64 " ms=%.1f\n", c->function, size, (uint64_t)result.output_size, ms);

end_job:;
    struct vmgmt_calc_job end = { .job = job.job };
    struct inflight_answer e;
    if (!f.table.broken)
        (void)calc_call(&f, VMGMT_MSG_CALC_END, &end, sizeof(end), &e, 0, c->function);
    if (out >= 0 && out != STDOUT_FILENO)
        close(out);
close_in:
    if (in >= 0)
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
