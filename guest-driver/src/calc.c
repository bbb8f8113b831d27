#include "calc.h"

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
};

static const char calc_usage[] =
    "usage: vmgmt-guest calc FUNCTION [INPUT|-] [OUTPUT|-] [--hex] [-d BDF] [-t MS] [-v]\n"
    "  the host runs FUNCTION (sha256, sha512, crc32c, gzip, gunzip) on INPUT (default stdin) and the result\n"
    "  goes to OUTPUT (default stdout); --hex prints the result as hex (for digests)\n";

static int calc_parse(int argc, char **argv, struct calc *c)
{
    static const struct option longopts[] = {
        { "hex", no_argument, NULL, 'x' }, { "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
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
    if (optind >= argc)
        return cli_usage_error("calc needs a FUNCTION%s", "");
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

/* One request and its checked answer (status OK, at least `need` payload bytes). */
static int calc_call(struct fileop *f, uint16_t type, const void *req, uint32_t len, struct inflight_answer *a, uint32_t need, const char *function)
{
    char during[96];
    snprintf(during, sizeof(during), "%s of %.64s", inflight_type_name(type), function);
    int rc = inflight_call(&f->table, type, req, len, a, during);
    if (rc)
        return rc;
    return fileop_expect(f, a, need, "calc", function);
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
