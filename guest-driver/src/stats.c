#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "inflight.h"
#include "report.h"
#include "session.h"
#include "signals.h"

#define STATS_RETRY_MS 3000u
#define STATS_RETRY_MAX_MS 30000u /* a mode the host does not offer stays so for a while */
#define STATS_LOOK_NS 1000000000ull /* between records: how often the loop looks for pushes and a lost channel (each look wakes an idle guest) */
#define STATS_DEFAULT_TIMEOUT_MS 5000u
#define STATS_MAX_COUNT 1000u

struct stats {
    struct cli_common common;
    struct session s;
    struct inflight table;
    uint32_t core_generation;
    uint32_t interval_ms;
    uint32_t seq;
    bool quiet_refusals;  /* the last record was refused: log the next refusal only when its status differs */
    int32_t last_status;
    bool write_share;     /* the loop: write STATS_SHARE_FILE when the host pushes a share */
};

/* ---- reading /proc ---- */

static int stats_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    close(fd);
    buf[got] = '\0';
    return (int)got;
}

/* "12.34" -> 1234 (hundredths), as PSI and loadavg print them; stops at the first other character. */
static uint32_t stats_hundredths(const char *p)
{
    uint64_t whole = 0, frac = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9')
        whole = whole * 10 + (uint64_t)(*p++ - '0');
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && digits < 2) {
            frac = frac * 10 + (uint64_t)(*p++ - '0');
            digits++;
        }
    }
    while (digits++ < 2)
        frac *= 10;
    uint64_t v = whole * 100 + frac;
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* avg10 of the "some" or "full" line of a /proc/pressure file; false when the file or line is missing. */
static bool stats_psi(const char *path, const char *kind, uint32_t *out)
{
    char buf[512];
    if (stats_read_file(path, buf, sizeof(buf)) <= 0)
        return false;
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, kind, strlen(kind)) != 0)
            continue;
        char *a = strstr(line, "avg10=");
        if (!a)
            return false;
        uint32_t v = stats_hundredths(a + 6);
        *out = v > 10000 ? 10000 : v;
        return true;
    }
    return false;
}

static uint64_t stats_meminfo(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return 0;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    return strtoull(p, NULL, 10);
}

/* The declared demand, or DEMAND_NONE when there is none or it expired. */
static void stats_read_demand(struct vmgmt_stats_record *r)
{
    r->demand = VMGMT_STATS_LIMIT_DEMAND_NONE;
    r->demand_left_ms = UINT32_MAX;
    char buf[256];
    if (stats_read_file(STATS_DEMAND_FILE, buf, sizeof(buf)) <= 0)
        return;
    unsigned demand;
    unsigned long long expires_ms;
    int used = 0;
    if (sscanf(buf, "%u %llu %n", &demand, &expires_ms, &used) < 2 || demand > 100)
        return;
    uint64_t now_ms = clock_now_ns() / 1000000ull;
    if (expires_ms != 0 && expires_ms <= now_ms)
        return;
    r->demand = (uint8_t)demand;
    if (expires_ms != 0)
        r->demand_left_ms = expires_ms - now_ms > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)(expires_ms - now_ms);
    const char *reason = buf + used;
    size_t n = strcspn(reason, "\n");
    if (n > VMGMT_STATS_LIMIT_MAX_REASON_BYTES)
        n = VMGMT_STATS_LIMIT_MAX_REASON_BYTES;
    /* Only printable ASCII goes on the wire: the core refuses control characters and invalid UTF-8. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)reason[i] >= 0x20 && (unsigned char)reason[i] < 0x7f)
            r->reason[k++] = (uint8_t)reason[i];
    r->reason_len = (uint16_t)k;
}

static void stats_build(struct stats *st, struct vmgmt_stats_record *r)
{
    memset(r, 0, sizeof(*r));
    r->version = VMGMT_STATS_LIMIT_RECORD_VERSION;
    r->size = sizeof(*r);
    r->seq = ++st->seq;
    r->interval_ms = st->interval_ms;
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    r->uptime_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    char buf[8192];
    if (stats_read_file("/proc/stat", buf, sizeof(buf)) > 0) {
        unsigned long long v[8] = { 0 };
        sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
        r->cpu_user = v[0], r->cpu_nice = v[1], r->cpu_system = v[2], r->cpu_idle = v[3];
        r->cpu_iowait = v[4], r->cpu_irq = v[5], r->cpu_softirq = v[6], r->cpu_steal = v[7];
        const char *running = strstr(buf, "procs_running ");
        if (running)
            r->runnable = (uint32_t)strtoul(running + 14, NULL, 10);
    }
    if (stats_read_file("/proc/meminfo", buf, sizeof(buf)) > 0) {
        r->mem_total_kib = stats_meminfo(buf, "MemTotal");
        r->mem_available_kib = stats_meminfo(buf, "MemAvailable");
        if (r->mem_available_kib > r->mem_total_kib)
            r->mem_available_kib = r->mem_total_kib;
    }
    if (stats_read_file("/proc/loadavg", buf, sizeof(buf)) > 0) {
        char *p = buf;
        uint32_t *load[3] = { &r->load1_milli, &r->load5_milli, &r->load15_milli };
        for (int i = 0; i < 3 && p; i++) {
            *load[i] = stats_hundredths(p) * 10u;
            p = strchr(p, ' ');
            if (p)
                p++;
        }
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    r->cpus = cpus < 1 ? 1u : cpus > 1024 ? 1024u : (uint32_t)cpus;
    if (stats_psi("/proc/pressure/cpu", "some", &r->psi_cpu_some))
        r->psi_present |= VMGMT_STATS_PSI_CPU;
    if (stats_psi("/proc/pressure/memory", "some", &r->psi_mem_some)) {
        r->psi_present |= VMGMT_STATS_PSI_MEMORY;
        stats_psi("/proc/pressure/memory", "full", &r->psi_mem_full);
    }
    if (stats_psi("/proc/pressure/io", "some", &r->psi_io_some)) {
        r->psi_present |= VMGMT_STATS_PSI_IO;
        stats_psi("/proc/pressure/io", "full", &r->psi_io_full);
    }
    stats_read_demand(r);
}

/* ---- files in STATS_DIR ---- */

static int stats_write_atomic(const char *path, const char *text)
{
    mkdir(STATS_DIR, 0755);
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void stats_on_share(const struct stats *st, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct vmgmt_stats_share sh;
    if (msg->length < sizeof(sh)) {
        fprintf(stderr, "stats: ignored a STATS_SHARE of %u bytes (expected %zu)\n", msg->length, sizeof(sh));
        return;
    }
    memcpy(&sh, payload, sizeof(sh));
    uint32_t n = sh.reason_len > VMGMT_STATS_LIMIT_MAX_SHARE_REASON_BYTES ? VMGMT_STATS_LIMIT_MAX_SHARE_REASON_BYTES : sh.reason_len;
    char reason[VMGMT_STATS_LIMIT_MAX_SHARE_REASON_BYTES + 1];
    memcpy(reason, sh.reason, n);
    reason[n] = '\0';
    for (uint32_t i = 0; i < n; i++)
        if (reason[i] == '\n' || reason[i] == '\r')
            reason[i] = ' ';
    char text[512];
    char demand[8];
    if (sh.demand == VMGMT_STATS_LIMIT_DEMAND_NONE)
        snprintf(demand, sizeof(demand), "none");
    else
        snprintf(demand, sizeof(demand), "%u", sh.demand);
    snprintf(text, sizeof(text),
             "weight=%u\nbase_weight=%u\ncap_percent=%u\nboost_left_ms=%u\npolicy=%s\nboosted=%s\nbudget_spent=%s\ndemand=%s\nreceived_ms=%" PRIu64 "\nreason=%s\n",
             sh.weight, sh.base_weight, sh.cap_percent, sh.boost_left_ms, sh.flags & VMGMT_STATS_SHARE_POLICY_ON ? "on" : "off",
             sh.flags & VMGMT_STATS_SHARE_BOOSTED ? "yes" : "no", sh.flags & VMGMT_STATS_SHARE_BUDGET_SPENT ? "yes" : "no", demand,
             (uint64_t)(clock_now_ns() / 1000000ull), reason);
    if (st->write_share && stats_write_atomic(STATS_SHARE_FILE, text) != 0)
        fprintf(stderr, "stats: cannot write %s: %s\n", STATS_SHARE_FILE, strerror(errno));
    report_verbose(st->common.verbose, "stats: share weight=%u (%s)", sh.weight, reason);
}

/* A push from the core (request id 0): the interval or the share. */
static void stats_on_push(void *arg, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct stats *st = arg;
    if (msg->type == VMGMT_MSG_STATS_CONFIG) {
        struct vmgmt_stats_config c;
        if (msg->length < sizeof(c)) {
            fprintf(stderr, "stats: ignored a STATS_CONFIG of %u bytes (expected %zu)\n", msg->length, sizeof(c));
            return;
        }
        memcpy(&c, payload, sizeof(c));
        if (c.interval_ms < VMGMT_STATS_LIMIT_MIN_INTERVAL_MS || c.interval_ms > VMGMT_STATS_LIMIT_MAX_INTERVAL_MS) {
            fprintf(stderr, "stats: ignored interval %u ms from the host (outside %u..%u)\n", c.interval_ms, VMGMT_STATS_LIMIT_MIN_INTERVAL_MS,
                    VMGMT_STATS_LIMIT_MAX_INTERVAL_MS);
            return;
        }
        if (c.interval_ms != st->interval_ms && st->write_share)
            fprintf(stderr, "stats: the host asks for a record every %u ms\n", c.interval_ms);
        st->interval_ms = c.interval_ms;
    } else if (msg->type == VMGMT_MSG_STATS_SHARE) {
        stats_on_share(st, msg, payload);
    } else {
        fprintf(stderr, "stats: ignored a message of type 0x%04x from the core\n", msg->type);
    }
}

/* ---- the channel ---- */

static int stats_connect(struct stats *st)
{
    int rc = session_open(&st->s, &st->common, true);
    if (rc)
        return rc;
    inflight_init(&st->table, &st->s.ch, st->common.timeout_ms);
    st->table.on_request = stats_on_push;
    st->table.on_request_arg = st;
    struct vmgmt_set_mode req = { .mode = VMGMT_MODE_STATS };
    struct inflight_answer a;
    rc = inflight_call(&st->table, VMGMT_MSG_SET_MODE, &req, sizeof(req), &a, "SET_MODE stats");
    if (!rc && a.status != VMGMT_ST_OK)
        rc = report_error(REPORT_EXIT_PROTOCOL, "stats: set mode stats on channel %u: %s (status %d)", st->s.ch.index, vmgmt_status_text(a.status), a.status);
    if (rc) {
        session_close(&st->s);
        return rc;
    }
    st->core_generation = __atomic_load_n(&st->s.dev.hdr->core_generation, __ATOMIC_ACQUIRE);
    return REPORT_EXIT_OK;
}

/* Sends one record and waits for its answer; *status gets the core's status. Returns a report_exit code. */
static int stats_send(struct stats *st, int32_t *status)
{
    struct vmgmt_stats_record r;
    stats_build(st, &r);
    struct inflight_answer a;
    int rc = inflight_call(&st->table, VMGMT_MSG_STATS_RECORD, &r, sizeof(r), &a, "STATS_RECORD");
    if (rc)
        return rc;
    *status = a.status;
    return REPORT_EXIT_OK;
}

static const char *stats_loss(const struct stats *st)
{
    const struct vmgmt_dev *dev = &st->s.dev;
    const struct channel *ch = &st->s.ch;
    if (__atomic_load_n(&dev->hdr->core_generation, __ATOMIC_ACQUIRE) != st->core_generation)
        return "the management core restarted";
    uint32_t status = __atomic_load_n(&dev->hdr->device_status, __ATOMIC_ACQUIRE);
    if (!(status & VMGMT_STATUS_BIT_DRIVER_OK) || (status & VMGMT_STATUS_BIT_NEEDS_RESET))
        return "the device was reset";
    if (__atomic_load_n(&ch->ctl->owner, __ATOMIC_ACQUIRE) != ch->token || __atomic_load_n(&ch->ctl->generation, __ATOMIC_ACQUIRE) != ch->generation)
        return "the channel was claimed by another process";
    if (__atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE) != VMGMT_CHANNEL_STATE_READY)
        return "the core no longer serves the channel";
    if (__atomic_load_n(&ch->ctl->mode, __ATOMIC_ACQUIRE) != VMGMT_MODE_STATS)
        return "the channel left stats mode";
    return NULL;
}

/* Takes the pushes waiting on c2g. False when the channel cannot be read. */
static bool stats_drain(struct stats *st)
{
    struct channel *ch = &st->s.ch;
    while (ring_can_consume(&ch->c2g)) {
        struct vmgmt_msg msg;
        static uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
        enum channel_io io = channel_recv(ch, &msg, payload, sizeof(payload), clock_now_ns());
        if (io != CHANNEL_IO_OK) {
            channel_report_io(ch, io, 0, "receiving a push");
            return false;
        }
        if (msg.type & VMGMT_MSG_RESPONSE_BIT) {
            fprintf(stderr, "stats: an answer (type 0x%04x, id %u) with no request out; claiming the channel again\n", msg.type, msg.request_id);
            return false;
        }
        stats_on_push(st, &msg, payload);
    }
    return true;
}

static void stats_sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
    if (!signals_stop_requested())
        nanosleep(&ts, NULL);
}

/* One claimed channel: a record every interval until the channel is lost or a signal comes. */
static void stats_run_channel(struct stats *st)
{
    fprintf(stderr, "stats: sending a record every %u ms on channel %u (pid %d)\n", st->interval_ms, st->s.ch.index, (int)getpid());
    uint64_t next_ns = clock_now_ns();
    while (!signals_stop_requested()) {
        const char *loss = stats_loss(st);
        if (loss) {
            fprintf(stderr, "stats: lost channel %u: %s; claiming a channel again\n", st->s.ch.index, loss);
            return;
        }
        if (!stats_drain(st))
            return;
        uint64_t now = clock_now_ns();
        if (now < next_ns) {
            stats_sleep_ns(next_ns - now < STATS_LOOK_NS ? next_ns - now : STATS_LOOK_NS);
            continue;
        }
        int32_t status = 0;
        if (stats_send(st, &status) != REPORT_EXIT_OK)
            return;
        if (status != VMGMT_ST_OK && (!st->quiet_refusals || status != st->last_status))
            fprintf(stderr, "stats: record %u refused: %s (status %d)\n", st->seq, vmgmt_status_text(status), status);
        st->quiet_refusals = status != VMGMT_ST_OK;
        st->last_status = status;
        /* A late loop does not catch up with a burst: the host's rate limit would refuse it. */
        next_ns = next_ns + (uint64_t)st->interval_ms * 1000000ull;
        if (next_ns < clock_now_ns())
            next_ns = clock_now_ns() + (uint64_t)st->interval_ms * 1000000ull;
    }
}

int stats_serve(const struct cli_common *o)
{
    struct stats *st = calloc(1, sizeof(*st));
    if (!st)
        return report_error(REPORT_EXIT_SYSTEM, "stats: out of memory");
    st->common = *o;
    st->write_share = true;
    st->interval_ms = VMGMT_STATS_LIMIT_DEFAULT_INTERVAL_MS;
    int last_rc = -1;
    uint32_t retry_ms = STATS_RETRY_MS;
    while (!signals_stop_requested()) {
        int rc = stats_connect(st);
        report_set_quiet(false);
        if (rc) {
            if (rc != last_rc)
                fprintf(stderr, "stats: not sending yet (exit code %d); retrying every %u s, then less often, quietly\n", rc, STATS_RETRY_MS / 1000);
            else if (retry_ms < STATS_RETRY_MAX_MS)
                retry_ms *= 2;
            last_rc = rc;
            /* The same failure again says nothing (an idle guest's console stays quiet). */
            report_set_quiet(true);
            stats_sleep_ns((uint64_t)(retry_ms < STATS_RETRY_MAX_MS ? retry_ms : STATS_RETRY_MAX_MS) * 1000000ull);
            continue;
        }
        last_rc = -1;
        retry_ms = STATS_RETRY_MS;
        stats_run_channel(st);
        session_close(&st->s);
        stats_sleep_ns(100000000ull);
    }
    free(st);
    return REPORT_EXIT_OK;
}

/* ---- commands ---- */

static const char stats_usage[] =
    "usage: vmgmt-guest stats push [--once] [--count N] [-t MS]   send N records now (default 1) and print the host's answer\n"
    "       vmgmt-guest stats demand 0..100|none [--for SECONDS] [--reason TEXT]\n"
    "                                                 declare how much CPU this guest needs (the agent sends it)\n"
    "       vmgmt-guest stats share [--json]          what the host gives this guest now, and why\n"
    "       vmgmt-guest stats serve                   the record loop (the agent runs it)\n";

static int stats_cmd_demand(int argc, char **argv)
{
    static const struct option longopts[] = { { "for", required_argument, NULL, 'f' }, { "reason", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 } };
    uint32_t for_s = 0;
    const char *reason = "";
    optind = 3;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (c) {
        case 'f': rc = cli_parse_u32(optarg, "--for (seconds)", 1, 30u * 86400u, &for_s); break;
        case 'r': reason = optarg; break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s' for stats demand", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind != argc - 1)
        return cli_usage_error("stats demand takes one value, 0..100 or none%s", "");
    if (strcmp(argv[optind], "none") == 0) {
        if (unlink(STATS_DEMAND_FILE) != 0 && errno != ENOENT)
            return report_error(REPORT_EXIT_SYSTEM, "cannot remove %s: %s", STATS_DEMAND_FILE, strerror(errno));
        printf("demand: none\n");
        return REPORT_EXIT_OK;
    }
    uint32_t demand;
    int rc = cli_parse_u32(argv[optind], "demand (0..100)", 0, 100, &demand);
    if (rc)
        return rc;
    if (strlen(reason) > VMGMT_STATS_LIMIT_MAX_REASON_BYTES)
        return report_error(REPORT_EXIT_USAGE, "--reason is %zu bytes; at most %u", strlen(reason), VMGMT_STATS_LIMIT_MAX_REASON_BYTES);
    for (const char *p = reason; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return report_error(REPORT_EXIT_USAGE, "--reason must be printable ASCII%s", "");
    uint64_t expires_ms = for_s ? clock_now_ns() / 1000000ull + (uint64_t)for_s * 1000u : 0;
    char line[128];
    snprintf(line, sizeof(line), "%u %" PRIu64 " %s\n", demand, expires_ms, reason);
    if (stats_write_atomic(STATS_DEMAND_FILE, line) != 0)
        return report_error(REPORT_EXIT_SYSTEM, "cannot write %s: %s", STATS_DEMAND_FILE, strerror(errno));
    if (for_s)
        printf("demand: %u for %u s%s%s\n", demand, for_s, reason[0] ? " reason=" : "", reason);
    else
        printf("demand: %u%s%s\n", demand, reason[0] ? " reason=" : "", reason);
    return REPORT_EXIT_OK;
}

static int stats_cmd_share(int argc, char **argv)
{
    bool json = argc > 3 && strcmp(argv[3], "--json") == 0;
    if (argc > 3 + (json ? 1 : 0))
        return cli_usage_error("unexpected argument '%s' for stats share", argv[argc - 1]);
    char buf[1024];
    if (stats_read_file(STATS_SHARE_FILE, buf, sizeof(buf)) <= 0)
        return report_error(REPORT_EXIT_SYSTEM, "no share from the host yet (%s is missing: is the agent running, and the daemon's scheduler on?)", STATS_SHARE_FILE);
    const char *received = strstr(buf, "received_ms=");
    uint64_t age_ms = received ? clock_now_ns() / 1000000ull - strtoull(received + 12, NULL, 10) : 0;
    if (!json) {
        fputs(buf, stdout);
        printf("age_ms=%" PRIu64 "\n", age_ms);
        return REPORT_EXIT_OK;
    }
    fputc('{', stdout);
    bool first = true;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        printf("%s\"%s\":\"", first ? "" : ",", line);
        for (const char *p = eq + 1; *p; p++)
            printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
        fputc('"', stdout);
        first = false;
    }
    printf(",\"age_ms\":\"%" PRIu64 "\"}\n", (uint64_t)age_ms);
    return REPORT_EXIT_OK;
}

static int stats_cmd_push(int argc, char **argv)
{
    static const struct option longopts[] = { { "once", no_argument, NULL, 'o' }, { "count", required_argument, NULL, 'n' }, { "timeout", required_argument, NULL, 't' },
                                              { "verbose", no_argument, NULL, 'v' }, { "device", required_argument, NULL, 'd' }, { NULL, 0, NULL, 0 } };
    struct stats *st = calloc(1, sizeof(*st));
    if (!st)
        return report_error(REPORT_EXIT_SYSTEM, "stats: out of memory");
    st->common = (struct cli_common){ .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = STATS_DEFAULT_TIMEOUT_MS };
    st->interval_ms = VMGMT_STATS_LIMIT_DEFAULT_INTERVAL_MS;
    uint32_t count = 1;
    optind = 3;
    opterr = 0;
    int c, rc = REPORT_EXIT_OK;
    while ((c = getopt_long(argc, argv, ":n:t:vd:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': count = 1; break;
        case 'n': rc = cli_parse_u32(optarg, "--count", 1, STATS_MAX_COUNT, &count); break;
        case 't': rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &st->common.timeout_ms); break;
        case 'v': st->common.verbose = true; break;
        case 'd': st->common.bdf = optarg; break;
        case ':': rc = cli_usage_error("option %s needs a value", argv[optind - 1]); break;
        default: rc = cli_usage_error("unknown option '%s' for stats push", argv[optind - 1]); break;
        }
        if (rc)
            goto out;
    }
    if (optind < argc) {
        rc = cli_usage_error("unexpected argument '%s' for stats push", argv[optind]);
        goto out;
    }
    signals_install();
    rc = stats_connect(st);
    if (rc)
        goto out;
    /* seq starts from the time, so records of successive `push` runs grow like the agent's do. */
    st->seq = (uint32_t)(clock_now_ns() / 1000000ull);
    uint32_t accepted = 0, refused = 0;
    for (uint32_t i = 0; i < count && !signals_stop_requested(); i++) {
        int32_t status = 0;
        rc = stats_send(st, &status);
        if (rc)
            break;
        if (status == VMGMT_ST_OK) {
            accepted++;
        } else {
            refused++;
            printf("push: record %u refused: %s (status %d)\n", i + 1, vmgmt_status_text(status), status);
        }
    }
    session_close(&st->s);
    if (!rc) {
        printf("push: sent=%u accepted=%u refused=%u\n", accepted + refused, accepted, refused);
        rc = refused ? REPORT_EXIT_PROTOCOL : REPORT_EXIT_OK;
    }
out:
    free(st);
    return rc;
}

int stats_main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "help") == 0 || strcmp(argv[2], "--help") == 0) {
        fputs(stats_usage, argc < 3 ? stderr : stdout);
        return argc < 3 ? REPORT_EXIT_USAGE : REPORT_EXIT_OK;
    }
    const char *cmd = argv[2];
    if (strcmp(cmd, "demand") == 0)
        return stats_cmd_demand(argc, argv);
    if (strcmp(cmd, "share") == 0)
        return stats_cmd_share(argc, argv);
    if (strcmp(cmd, "push") == 0)
        return stats_cmd_push(argc, argv);
    if (strcmp(cmd, "serve") == 0) {
        if (argc > 3)
            return cli_usage_error("stats serve takes no arguments, not '%s'", argv[3]);
        struct cli_common o = { .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = STATS_DEFAULT_TIMEOUT_MS };
        signals_install();
        return stats_serve(&o);
    }
    return cli_usage_error("unknown stats command '%s': use push, demand, share or serve", cmd);
}
