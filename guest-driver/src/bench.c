#include "bench.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "report.h"
#include "session.h"
#include "signals.h"
#include "slice.h"
#include "tcpbench.h"

#define BENCH_MAX_MIB 4096u
#define BENCH_MAX_REPS 1000u

struct bench_options {
    struct cli_common common;
    uint32_t mib;
    uint32_t reps;
};

static int bench_parse(int argc, char **argv, struct bench_options *o)
{
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' }, { "mib", required_argument, NULL, 'm' },
        { "reps", required_argument, NULL, 'r' },   { NULL, 0, NULL, 0 },
    };
    *o = (struct bench_options){ .common = { .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = 2000 },
                                 .mib = BENCH_DEFAULT_MIB, .reps = BENCH_DEFAULT_REPS };
    if (argc < 3 || strcmp(argv[2], "memcpy") != 0)
        return cli_usage_error("bench needs a benchmark: memcpy, tcp-echo or tcp-rtt%s", "");
    optind = 3;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":d:v", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (c) {
        case 'd': o->common.bdf = optarg; break;
        case 'v': o->common.verbose = true; break;
        case 'm': rc = cli_parse_u32(optarg, "bench size --mib", 1, BENCH_MAX_MIB, &o->mib); break;
        case 'r': rc = cli_parse_u32(optarg, "bench repetitions --reps", 1, BENCH_MAX_REPS, &o->reps); break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s' for bench memcpy", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("bench memcpy takes no arguments, not '%s'", argv[optind]);
    return REPORT_EXIT_OK;
}

/* One pass over the RAM buffer in chunks; returns the nanoseconds it took. */
static uint64_t bench_pass(uint8_t *ram, uint64_t ram_bytes, const struct slice *s, uint32_t chunk, uint32_t slots, bool to_bar)
{
    uint64_t start = clock_now_ns();
    uint32_t slot = 0;
    for (uint64_t at = 0; at < ram_bytes; at += chunk) {
        uint32_t n = ram_bytes - at < chunk ? (uint32_t)(ram_bytes - at) : chunk;
        uint8_t *bar = slice_at(s, slot * chunk);
        if (to_bar)
            memcpy(bar, ram + at, n);
        else
            memcpy(ram + at, bar, n);
        slot = slot + 1 == slots ? 0 : slot + 1;
    }
    __asm__ volatile("" ::: "memory");
    return clock_now_ns() - start;
}

static int bench_memcpy(const struct bench_options *o, struct session *sess)
{
    struct slice s;
    slice_attach(&s, &sess->dev, sess->ch.index);
    uint32_t chunk = s.size < BENCH_CHUNK_BYTES ? s.size : BENCH_CHUNK_BYTES;
    uint32_t slots = s.size / chunk;
    uint64_t ram_bytes = (uint64_t)o->mib << 20;
    uint8_t *ram = malloc(ram_bytes);
    if (!ram)
        return report_error(REPORT_EXIT_SYSTEM, "bench memcpy: cannot allocate %" PRIu32 " MiB of guest RAM; use a smaller --mib", o->mib);
    memset(ram, 0xa5, ram_bytes); /* faults every page in before the timing */
    report_verbose(o->common.verbose, "bench memcpy: %" PRIu32 " MiB per rep, %u reps, %u-byte chunks into %u places of the %u-byte slice of channel %u",
                   o->mib, o->reps, chunk, slots, s.size, sess->ch.index);
    bench_pass(ram, ram_bytes, &s, chunk, slots, true);
    bench_pass(ram, ram_bytes, &s, chunk, slots, false);
    uint64_t to_ns = 0, from_ns = 0;
    for (uint32_t r = 0; r < o->reps && !signals_stop_requested(); r++) {
        to_ns += bench_pass(ram, ram_bytes, &s, chunk, slots, true);
        from_ns += bench_pass(ram, ram_bytes, &s, chunk, slots, false);
    }
    free(ram);
    if (signals_stop_requested())
        return report_error(REPORT_EXIT_SYSTEM, "bench memcpy: interrupted; channel %u released", sess->ch.index);
    uint64_t bytes = ram_bytes * o->reps;
    printf("memcpy: to_bar_MBps=%.1f from_bar_MBps=%.1f bytes=%" PRIu64 "\n", to_ns ? (double)bytes * 1000.0 / (double)to_ns : 0.0,
           from_ns ? (double)bytes * 1000.0 / (double)from_ns : 0.0, bytes);
    return REPORT_EXIT_OK;
}

static int bench_body(struct session *s, void *ctx)
{
    return bench_memcpy(ctx, s);
}

int bench_main(int argc, char **argv)
{
    if (argc >= 3 && (strcmp(argv[2], "tcp-echo") == 0 || strcmp(argv[2], "tcp-rtt") == 0))
        return tcpbench_main(argc, argv);
    struct bench_options o;
    int rc = bench_parse(argc, argv, &o);
    return rc ? rc : session_run(&o.common, bench_body, &o);
}
