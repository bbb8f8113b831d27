#include "agent.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "agentcopy.h"
#include "agentmsg.h"
#include "channel.h"
#include "cli.h"
#include "clock.h"
#include "exec.h"
#include "fileop.h"
#include "relay.h"
#include "report.h"
#include "session.h"
#include "signals.h"
#include "stats.h"
#include "update.h"
#include "wait.h"

#define AGENT_DEFAULT_TIMEOUT_MS 30000u
#define AGENT_MSIX_HEALTH_CHECK_NS 5000000000ull /* MSI-X: wake at least this often to check the channel and the core (a restarted core and a device reset also ring) */
#define AGENT_VFIO_RETRY_NS 5000000000ull /* polling because vfio was busy: how often to try it again */
#define AGENT_REAP_LOOK_NS 1000000000ull /* how often a waiting agent looks for channels left behind */
#define AGENT_POLL_HEALTH_CHECK_NS 60000000000ull /* polling checks them at every look; this only bounds one wait */
#define AGENT_RELEASE_TIMEOUT_MS 2000u
#define AGENT_RECONNECT_MS 100u                 /* after losing the channel; AGENT_RETRY_MS when it was lost within a second */
#define AGENT_DEFERRED_MAX VMGMT_LIMIT_MAX_IN_FLIGHT_PER_CHANNEL

/* A refusal that could not be sent at once (g2c full while a copy ran): sent from the main loop. */
struct agent_deferred {
    uint32_t request_id;
    uint16_t type;
    int32_t status;
};

struct agent {
    struct cli_common common;
    uint64_t warm_backoff_ns;                  /* --poll-ms: the longest sleep while warm */
    uint64_t idle_backoff_ns;                  /* --idle-poll-ms: the longest sleep after AGENT_WARM_NS without a request */
    uint64_t last_active_ns;                   /* the last request, or the connect */
    uint64_t last_reap_look_ns;                /* the last look for channels left behind by dead processes */
    bool no_stats;                             /* --no-stats: no stats loop beside the agent */
    pid_t stats_pid;                           /* the stats loop's process (stats.c), or 0 */
    uint64_t last_vfio_try_ns;                 /* polling because vfio was busy: the last try to take it */
    struct session s;
    bool connected;
    struct fileop f;
    uint32_t core_generation;                  /* at connect */
    struct agentmsg_copy queue[AGENT_QUEUE_MAX];
    uint32_t queue_head, queue_count;
    struct agent_deferred deferred[AGENT_DEFERRED_MAX];
    uint32_t deferred_count;
    struct agentmsg_copy scratch;              /* decode target when the queue is full */
    uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
    /* Driver update (src/update.h): this agent's side as the old one, and as the new one. */
    struct update up;
    int takeover_fd;                           /* --takeover-fd: started by an old agent to take over; -1 */
    const char *installed_as;                  /* --installed-as */
    struct update_adopt adopt;                 /* what the old agent handed over */
    bool handing_over;                         /* the new agent reported in: serve what is queued, then hand over */
    bool rollback_to_report;                   /* rolled back, the channel lost meanwhile: report after the next claim */
};

enum agent_outcome { AGENT_LOST, AGENT_STOP, AGENT_HANDED };

static int agent_parse(int argc, char **argv, struct agent *a)
{
    struct cli_common *o = &a->common;
    uint32_t poll_ms = (uint32_t)(AGENT_WARM_BACKOFF_NS / 1000000u), idle_poll_ms = (uint32_t)(AGENT_IDLE_BACKOFF_NS / 1000000u);
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' },       { "timeout", required_argument, NULL, 't' },
        { "wait", required_argument, NULL, 'w' },   { "spin-us", required_argument, NULL, 's' }, { "poll-ms", required_argument, NULL, 'p' },
        { "idle-poll-ms", required_argument, NULL, 'i' }, { "no-stats", no_argument, NULL, 'S' },
        { "takeover-fd", required_argument, NULL, 'T' }, { "installed-as", required_argument, NULL, 'A' }, { NULL, 0, NULL, 0 },
    };
    *o = (struct cli_common){ .wait = CLI_WAIT_AUTO, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = AGENT_DEFAULT_TIMEOUT_MS, .owns_interrupts = true };
    a->takeover_fd = -1;
    optind = 2;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":d:vt:", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (c) {
        case 'd': o->bdf = optarg; break;
        case 'v': o->verbose = true; break;
        case 't': rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &o->timeout_ms); break;
        case 'w': rc = cli_parse_wait(optarg, &o->wait); break;
        case 's': rc = cli_parse_u32(optarg, "spin time --spin-us (microseconds)", 0, 1000000, &o->spin_us); break;
        case 'p': rc = cli_parse_u32(optarg, "poll interval --poll-ms (milliseconds)", 1, 1000, &poll_ms); break;
        case 'i': rc = cli_parse_u32(optarg, "idle poll interval --idle-poll-ms (milliseconds)", 1, 10000, &idle_poll_ms); break;
        case 'S': a->no_stats = true; break;
        case 'T': {
            uint32_t fd;
            rc = cli_parse_u32(optarg, "--takeover-fd (an fd the old agent passed)", 3, 1023, &fd);
            a->takeover_fd = (int)fd;
            break;
        }
        case 'A': a->installed_as = optarg; break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s' for agent", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("agent takes no arguments, not '%s'", argv[optind]);
    a->warm_backoff_ns = (uint64_t)poll_ms * 1000000u;
    a->idle_backoff_ns = (uint64_t)(idle_poll_ms > poll_ms ? idle_poll_ms : poll_ms) * 1000000u;
    return REPORT_EXIT_OK;
}

static enum channel_io agent_answer(struct agent *a, uint32_t request_id, uint16_t type, int32_t status, uint64_t bytes, uint64_t deadline_ns)
{
    struct vmgmt_file_io_result res = { .bytes = (uint32_t)bytes };
    struct vmgmt_msg msg = { .type = (uint16_t)(type | VMGMT_MSG_RESPONSE_BIT), .request_id = request_id, .status = status,
                             .length = type == VMGMT_MSG_AGENT_COPY || type == VMGMT_MSG_AGENT_LIST ? (uint32_t)sizeof(res) : 0u };
    return channel_send(&a->s.ch, &msg, &res, deadline_ns);
}

/* Answers a refused request now if g2c has room (never waits: this may run between the answers of a copy),
 * else later from the main loop. The core lets the host have at most AGENT_DEFERRED_MAX requests out. */
static void agent_refuse(struct agent *a, uint32_t request_id, uint16_t type, int32_t status)
{
    if (a->deferred_count == 0 && agent_answer(a, request_id, type, status, 0, clock_now_ns()) == CHANNEL_IO_OK)
        return;
    if (a->deferred_count == AGENT_DEFERRED_MAX) {
        report_error(REPORT_EXIT_PROTOCOL, "agent: dropped the answer to request %u: %u answers wait already, more than the host may have requests out",
                     request_id, a->deferred_count);
        return;
    }
    a->deferred[a->deferred_count++] = (struct agent_deferred){ .request_id = request_id, .type = type, .status = status };
}

static bool agent_flush_deferred(struct agent *a)
{
    for (uint32_t i = 0; i < a->deferred_count; i++) {
        const struct agent_deferred *d = &a->deferred[i];
        enum channel_io io = agent_answer(a, d->request_id, d->type, d->status, 0, clock_now_ns() + (uint64_t)a->common.timeout_ms * 1000000ull);
        if (io != CHANNEL_IO_OK) {
            channel_report_io(&a->s.ch, io, a->common.timeout_ms, "answering a refused host request");
            return false;
        }
    }
    a->deferred_count = 0;
    return true;
}

/* AGENT_MKDIR: creates the directory (never through a symlink at its last component); an existing directory
 * is OK, anything else there is EXISTS. */
static int32_t agent_mkdir(const struct vmgmt_msg *msg, const uint8_t *payload)
{
    char path[PATH_MAX];
    uint32_t mode;
    const char *why;
    int32_t st = agentmsg_decode_mkdir(msg, payload, path, sizeof(path), &mode, &why);
    if (st != VMGMT_ST_OK) {
        fprintf(stderr, "agent: refused AGENT_MKDIR %u: %s status=%d\n", msg->request_id, why, st);
        return st;
    }
    if (mkdir(path, (mode_t)mode) == 0)
        return VMGMT_ST_OK;
    int err = errno;
    struct stat sb;
    if (err == EEXIST && lstat(path, &sb) == 0)
        return S_ISDIR(sb.st_mode) ? VMGMT_ST_OK : VMGMT_ST_EXISTS;
    fprintf(stderr, "agent: mkdir %s: %s\n", path, strerror(err));
    return agentcopy_errno_status(err);
}

/* A message the host started (no RESPONSE_BIT): queued when it is a valid AGENT_COPY and there is room,
 * refused otherwise. Called from the main loop and, during a copy, from inflight_next. */
static void agent_on_request(void *arg, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct agent *a = arg;
    if (msg->type == VMGMT_MSG_EXEC_START) { /* `vmgmt vm exec`: forks an exec process (exec.c), answers at once */
        agent_refuse(a, msg->request_id, msg->type, exec_spawn(&a->common, msg, payload));
        return;
    }
    if (msg->type == VMGMT_MSG_AGENT_UPDATE) {
        const char *why = "";
        int32_t st = update_take_request(&a->up, msg, payload, &why);
        if (st != VMGMT_ST_OK) {
            fprintf(stderr, "agent: refused AGENT_UPDATE %u: %s status=%d\n", msg->request_id, why, st);
            agent_refuse(a, msg->request_id, msg->type, st);
        }
        return;
    }
    if (msg->type == VMGMT_MSG_AGENT_MKDIR) { /* `vmgmt cp -r` to the guest: answered at once */
        agent_refuse(a, msg->request_id, msg->type, agent_mkdir(msg, payload));
        return;
    }
    if (msg->type != VMGMT_MSG_AGENT_COPY && msg->type != VMGMT_MSG_AGENT_LIST) {
        /* The core decodes answers too and counts one of a type it does not know as our protocol error. */
        fprintf(stderr, "agent: ignored request %u of unknown type 0x%04x: the agent serves AGENT_COPY, AGENT_LIST, AGENT_MKDIR, AGENT_UPDATE and EXEC_START only, and an answer of an unknown type would count as a protocol error against this channel\n",
                msg->request_id, msg->type);
        return;
    }
    bool room = a->queue_count < AGENT_QUEUE_MAX;
    struct agentmsg_copy *slot = room ? &a->queue[(a->queue_head + a->queue_count) % AGENT_QUEUE_MAX] : &a->scratch;
    const char *why;
    int32_t status = agentmsg_decode(msg, payload, slot, &why);
    if (status == VMGMT_ST_OK && !room) {
        status = VMGMT_ST_RING_FULL;
        why = "the agent has AGENT_QUEUE_MAX (8) copies queued already";
    }
    if (status != VMGMT_ST_OK) {
        fprintf(stderr, "agent: refused request %u (type 0x%04x, %u bytes): %s status=%d\n", msg->request_id, msg->type, msg->length, why, status);
        agent_refuse(a, msg->request_id, msg->type, status);
        return;
    }
    a->queue_count++;
    a->last_active_ns = clock_now_ns();
    report_verbose(a->common.verbose, "agent: queued request %u: copy %s %s (%u queued)", msg->request_id, agentmsg_direction_name(slot->direction),
                   slot->guest_path, a->queue_count);
}

/* Why the agent cannot go on with its channel, or NULL. Cheap: also the idle wait's wake-up condition. */
static const char *agent_loss(const struct agent *a)
{
    const struct vmgmt_dev *dev = &a->s.dev;
    const struct channel *ch = &a->s.ch;
    if (__atomic_load_n(&dev->hdr->core_generation, __ATOMIC_ACQUIRE) != a->core_generation)
        return "the management core restarted (core_generation changed)";
    uint32_t status = __atomic_load_n(&dev->hdr->device_status, __ATOMIC_ACQUIRE);
    if (!(status & VMGMT_STATUS_BIT_DRIVER_OK) || (status & VMGMT_STATUS_BIT_NEEDS_RESET))
        return "the device was reset (device_status lost DRIVER_OK or has NEEDS_RESET)";
    if (__atomic_load_n(&ch->ctl->owner, __ATOMIC_ACQUIRE) != ch->token)
        return "another process owns the channel now";
    if (__atomic_load_n(&ch->ctl->generation, __ATOMIC_ACQUIRE) != ch->generation)
        return "the channel was claimed again (generation changed)";
    if (__atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE) != VMGMT_CHANNEL_STATE_READY)
        return "the core no longer serves the channel (state is not READY)";
    if (__atomic_load_n(&ch->ctl->mode, __ATOMIC_ACQUIRE) != VMGMT_MODE_AGENT)
        return "the channel left agent mode";
    return NULL;
}

/* A channel left behind: owned by a pid that no longer exists (a command died mid-way; the core still holds
 * its open files and unfinished puts), or left in agent mode by an earlier agent (the host would take it for
 * ours). */
static bool agent_left_behind(const struct agent *a, uint32_t i, uint32_t *owner, bool *stale_agent)
{
    const struct vmgmt_dev *dev = &a->s.dev;
    if (i == a->s.ch.index)
        return false;
    const struct vmgmt_channel *ctl = (const struct vmgmt_channel *)(dev->bar2 + vmgmt_channel_offset(&dev->geom, i));
    *owner = __atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE);
    const char *liveness = channel_owner_liveness(*owner);
    *stale_agent = __atomic_load_n(&ctl->mode, __ATOMIC_ACQUIRE) == VMGMT_MODE_AGENT && strcmp(liveness, "alive") != 0;
    return (*owner != 0 && strcmp(liveness, "gone") == 0) || *stale_agent;
}

/* Claiming a channel left behind resets it through the core, which drops what it held; then it is
 * released. Runs at connect and whenever a look (about once a second) finds one, so a dead process never
 * keeps a channel, open files or a half-written put. */
static void agent_reap(struct agent *a)
{
    struct vmgmt_dev *dev = &a->s.dev;
    for (uint32_t i = 0; i < dev->geom.channel_count; i++) {
        uint32_t owner;
        bool stale_agent;
        if (!agent_left_behind(a, i, &owner, &stale_agent))
            continue;
        struct channel left;
        if (channel_claim_at(dev, &left, i, a->common.timeout_ms) == REPORT_EXIT_OK) {
            fprintf(stderr, "agent: reset channel %u, left %s by pid %u, which is gone\n", i, stale_agent ? "in agent mode" : "claimed", owner);
            channel_release(&left);
        }
    }
}

static bool agent_wakeable(void *arg)
{
    struct agent *a = arg;
    if (ring_can_consume(&a->s.ch.c2g) || agent_loss(a) != NULL || update_ready(&a->up))
        return true;
    uint64_t now = clock_now_ns();
    if (now - a->last_reap_look_ns < AGENT_REAP_LOOK_NS)
        return false;
    a->last_reap_look_ns = now;
    for (uint32_t i = 0; i < a->s.dev.geom.channel_count; i++) {
        uint32_t owner;
        bool stale_agent;
        if (agent_left_behind(a, i, &owner, &stale_agent))
            return true;
    }
    return false;
}

/* AGENT_HELLO after every claim: the host learns this agent's version (and, taking over, the handover gap). */
static int agent_say_hello(struct agent *a)
{
    bool takeover = a->takeover_fd >= 0;
    uint64_t gap_ns = takeover ? clock_now_ns() - a->adopt.stop_ns : 0;
    int rc = update_hello(&a->f.table, takeover ? VMGMT_AGENT_HELLO_FLAG_TAKEOVER : 0u, takeover ? a->adopt.old_pid : 0u,
                          (uint32_t)(gap_ns / 1000u > UINT32_MAX ? UINT32_MAX : gap_ns / 1000u));
    if (rc && takeover) {
        session_close(&a->s);
        a->connected = false;
        return rc;
    }
    if (rc)
        fprintf(stderr, "agent: the host did not take AGENT_HELLO (exit code %d); serving without reporting the version %s\n", rc, update_version());
    if (takeover)
        fprintf(stderr, "agent: version %s took over from pid %u: %" PRIu64 " us from the old agent pausing its relay to this hello\n", update_version(),
                a->adopt.old_pid, gap_ns / 1000u);
    return REPORT_EXIT_OK;
}

static int agent_connect(struct agent *a)
{
    int rc = session_open(&a->s, &a->common, true);
    if (rc)
        return rc;
    agent_reap(a);
    rc = fileop_start_in_mode(&a->f, &a->s.ch, a->common.timeout_ms, VMGMT_MODE_AGENT, "agent");
    if (rc) {
        session_close(&a->s);
        return rc;
    }
    a->f.table.on_request = agent_on_request;
    a->f.table.on_request_arg = a;
    a->core_generation = __atomic_load_n(&a->s.dev.hdr->core_generation, __ATOMIC_ACQUIRE);
    a->queue_head = a->queue_count = a->deferred_count = 0;
    a->last_active_ns = clock_now_ns();
    a->connected = true;
    return agent_say_hello(a);
}

/* agent_connect with stderr captured in a memfd: what it said is shown only when the outcome differs from
 * the previous attempt's (or under -v), so a VM whose daemon is not up yet logs once, not every few seconds. */
static int agent_connect_logged(struct agent *a, int *last_rc)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int log = memfd_create("vmgmt-agent-connect", MFD_CLOEXEC);
    if (saved < 0 || log < 0 || dup2(log, STDERR_FILENO) < 0) {
        if (saved >= 0)
            close(saved);
        if (log >= 0)
            close(log);
        return agent_connect(a);
    }
    int rc = agent_connect(a);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    if (rc != *last_rc || a->common.verbose) {
        char buf[4096];
        ssize_t n;
        off_t at = 0;
        while ((n = pread(log, buf, sizeof(buf), at)) > 0) {
            fwrite(buf, 1, (size_t)n, stderr);
            at += n;
        }
        if (rc)
            fprintf(stderr, "agent: not serving yet (exit code %d); retrying every %u s\n", rc, AGENT_RETRY_MS / 1000);
    }
    close(log);
    *last_rc = rc;
    if (!rc && a->s.dev.relay.server)
        fprintf(stderr, "agent: serving host copies on channel %u of %s (pid %d, wait=msix, wake-up relay %s)\n", a->s.ch.index, a->s.dev.bdf,
                (int)getpid(), a->s.dev.relay.server->path);
    else if (!rc)
        fprintf(stderr, "agent: serving host copies on channel %u of %s (pid %d, wait=%s%s%s)\n", a->s.ch.index, a->s.dev.bdf, (int)getpid(),
                dev_wait_name(a->s.dev.wait), a->s.dev.wait_why[0] ? "; " : "", a->s.dev.wait_why[0] ? a->s.dev.wait_why : "");
    return rc;
}

/* Copies, logs and answers one queued request. False when the channel can no longer be used. */
static bool agent_copy(struct agent *a, const struct agentmsg_copy *req)
{
    struct agentcopy_result res = agentcopy_run(&a->f, req);
    a->last_active_ns = clock_now_ns();
    fprintf(stderr, "agent: %s %s %s bytes=%" PRIu64 " ms=%" PRIu64 " status=%d\n", req->type == VMGMT_MSG_AGENT_LIST ? "list" : "copy",
            agentmsg_direction_name(req->direction), req->guest_path,
            res.bytes, (res.elapsed_ns + 500000) / 1000000, res.status);
    if (res.channel_broken)
        return false;
    /* The copy is over (a from-guest copy may be committed): say so even when SIGTERM came meanwhile. */
    bool stopping = signals_stop_requested() != 0;
    a->s.dev.ignore_stop = stopping;
    uint32_t timeout_ms = stopping ? AGENT_RELEASE_TIMEOUT_MS : a->common.timeout_ms;
    enum channel_io io = agent_answer(a, req->request_id, req->type, res.status, res.bytes, clock_now_ns() + (uint64_t)timeout_ms * 1000000ull);
    a->s.dev.ignore_stop = false;
    if (io != CHANNEL_IO_OK) {
        channel_report_io(&a->s.ch, io, timeout_ms, "answering AGENT_COPY");
        return false;
    }
    return !stopping;
}

/* Takes every message the host has put on c2g. While idle the agent has no request of its own out. */
static bool agent_drain(struct agent *a)
{
    struct channel *ch = &a->s.ch;
    while (ring_can_consume(&ch->c2g)) {
        struct vmgmt_msg msg;
        enum channel_io io = channel_recv(ch, &msg, a->payload, sizeof(a->payload), clock_now_ns());
        if (io != CHANNEL_IO_OK) {
            channel_report_io(ch, io, 0, "receiving a host request");
            return false;
        }
        if (msg.type & VMGMT_MSG_RESPONSE_BIT) {
            report_error(REPORT_EXIT_PROTOCOL,
                         "protocol violation by the core on channel %u: an answer (type 0x%04x, request_id %u) while the agent has no request out; claiming the channel again",
                         ch->index, msg.type, msg.request_id);
            return false;
        }
        agent_on_request(a, &msg, a->payload);
    }
    return true;
}

static void agent_start_stats(struct agent *a);
static void agent_stop_stats(struct agent *a);
static void agent_stats_on(void *arg)
{
    struct agent *a = arg;
    if (!a->no_stats && a->stats_pid <= 0)
        agent_start_stats(a);
}
static void agent_stats_off(void *arg)
{
    agent_stop_stats(arg);
}

static struct update_agent agent_update_view(struct agent *a)
{
    return (struct update_agent){ .s = &a->s, .table = &a->f.table, .timeout_ms = a->common.timeout_ms, .stop_stats = agent_stats_off,
                                  .start_stats = agent_stats_on, .arg = a };
}

static enum agent_outcome agent_serve(struct agent *a)
{
    struct vmgmt_dev *dev = &a->s.dev;
    struct channel *ch = &a->s.ch;
    for (;;) {
        if (signals_stop_requested())
            return AGENT_STOP;
        if (!agent_flush_deferred(a))
            return signals_stop_requested() ? AGENT_STOP : AGENT_LOST;
        if (a->queue_count > 0) {
            bool ok = agent_copy(a, &a->queue[a->queue_head]);
            a->queue_head = (a->queue_head + 1) % AGENT_QUEUE_MAX;
            a->queue_count--;
            if (!ok)
                return signals_stop_requested() ? AGENT_STOP : AGENT_LOST;
            continue;
        }
        if (a->handing_over) {
            /* What the host put on our ring before the new agent's hello is served here, then it is the new one's. */
            if (!agent_drain(a))
                return signals_stop_requested() ? AGENT_STOP : AGENT_LOST;
            if (a->queue_count == 0 && a->deferred_count == 0)
                return AGENT_HANDED;
            continue;
        }
        if (update_ready(&a->up)) {
            struct update_agent ag = agent_update_view(a);
            if (update_step(&a->up, &ag) == UPDATE_EV_HANDED_OVER)
                a->handing_over = true;
            continue;
        }
        const char *loss = agent_loss(a);
        if (loss) {
            int32_t last = __atomic_load_n(&ch->ctl->last_status, __ATOMIC_ACQUIRE);
            fprintf(stderr, "agent: lost channel %u: %s (state %s, last_status %d: %s); claiming a channel again\n", ch->index, loss,
                    channel_state_name(__atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE)), last, vmgmt_status_text(last));
            return AGENT_LOST;
        }
        /* Polling because a command held vfio at connect: take the interrupt as soon as it is free. */
        uint64_t t = clock_now_ns();
        if (dev->wait == DEV_WAIT_POLL && t - a->last_vfio_try_ns >= AGENT_VFIO_RETRY_NS) {
            a->last_vfio_try_ns = t;
            if (session_retry_interrupts(dev))
                fprintf(stderr, "agent: vfio is free now: waiting on MSI-X (wait=msix, wake-up relay %s)\n",
                        dev->relay.server ? dev->relay.server->path : "none");
        }
        /* Polling: every look costs a wake-up, so the interval stretches once no request came for a while.
         * Each wait runs to the end of its stage: wait_until starts its back-off at 5 us every time. */
        uint64_t now = clock_now_ns(), deadline;
        if (dev->wait == DEV_WAIT_MSIX) {
            deadline = now + AGENT_MSIX_HEALTH_CHECK_NS;
        } else if (now - a->last_active_ns < AGENT_WARM_NS) {
            dev->backoff_max_ns = a->warm_backoff_ns;
            deadline = a->last_active_ns + AGENT_WARM_NS;
        } else {
            dev->backoff_max_ns = a->idle_backoff_ns;
            deadline = now + AGENT_POLL_HEALTH_CHECK_NS;
        }
        if (dev->wait == DEV_WAIT_POLL && strstr(dev->wait_why, "is busy") && deadline > a->last_vfio_try_ns + AGENT_VFIO_RETRY_NS)
            deadline = a->last_vfio_try_ns + AGENT_VFIO_RETRY_NS;
        if (deadline - now > update_wait_cap_ns(&a->up))
            deadline = now + update_wait_cap_ns(&a->up); /* an update trial: look at the new agent often */
        enum wait_result r = wait_until(dev, agent_wakeable, a, &ch->c2g.ring->need_wakeup, deadline);
        dev->backoff_max_ns = DEV_DEFAULT_BACKOFF_MAX_NS;
        if (r == WAIT_INTERRUPTED)
            return AGENT_STOP;
        agent_reap(a);
        if (r == WAIT_ERROR) {
            report_error(REPORT_EXIT_SYSTEM, "agent: waiting for the MSI-X eventfd failed: %s; claiming a channel again", strerror(errno));
            return AGENT_LOST;
        }
        if (!agent_drain(a))
            return signals_stop_requested() ? AGENT_STOP : AGENT_LOST;
    }
}

/* On the way out the channel is reset first: the core leaves agent mode and fails the host's outstanding
 * copies at once instead of letting them time out. */
static void agent_disconnect(struct agent *a, bool stopping)
{
    if (stopping && a->connected) {
        a->s.dev.ignore_stop = true;
        if (channel_reset(&a->s.ch, AGENT_RELEASE_TIMEOUT_MS) == REPORT_EXIT_OK)
            report_verbose(a->common.verbose, "agent: reset channel %u on the way out", a->s.ch.index);
    }
    session_close(&a->s);
    a->connected = false;
}

static void agent_sleep_ms(uint32_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    if (!signals_stop_requested())
        nanosleep(&ts, NULL); /* SIGTERM interrupts it */
}

/* The stats loop runs in a child process on its own channel (MODE_STATS), so a copy never delays a record
 * and the agent's loop stays as it is; the child dies with the agent (PR_SET_PDEATHSIG) and on its SIGTERM. */
static void agent_start_stats(struct agent *a)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "agent: cannot start the stats loop: %s; the host gets no statistics from this guest\n", strerror(errno));
        return;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        struct cli_common o = a->common;
        o.timeout_ms = 5000;
        /* The agent owns vfio and the relay: a stats loop that raced it for vfio would leave it polling.
         * The loop sleeps between records anyway, so it polls. */
        o.owns_interrupts = false;
        o.wait = CLI_WAIT_POLL;
        _exit(stats_serve(&o));
    }
    a->stats_pid = pid;
}

static void agent_stop_stats(struct agent *a)
{
    if (a->stats_pid <= 0)
        return;
    kill(a->stats_pid, SIGTERM);
    waitpid(a->stats_pid, NULL, 0);
    a->stats_pid = 0;
}

/* The new agent reported in and our ring is empty: reset and release our channel (the core drops it from
 * agent mode; the host sends to the new agent since its hello), then watch the new agent on probation.
 * True: committed, *code is the exit code to leave with (we were the new agent's parent until it ended).
 * False: rolled back, serving again (or reconnecting, reporting once a channel is ours again). */
static bool agent_hand_over(struct agent *a, int *code)
{
    a->handing_over = false;
    a->s.dev.ignore_stop = true;
    if (channel_reset(&a->s.ch, AGENT_RELEASE_TIMEOUT_MS) != REPORT_EXIT_OK)
        fprintf(stderr, "agent: could not reset channel %u while handing over; releasing it as it is\n", a->s.ch.index);
    a->s.dev.ignore_stop = false;
    channel_release(&a->s.ch);
    a->connected = false;
    struct update_agent ag = agent_update_view(a);
    if (update_watch(&a->up, &ag, code))
        return true;
    update_resume(&a->up, &ag);
    /* The device is still open (vfio, BARs, relay): claim a channel on it again. */
    int rc = channel_claim(&a->s.dev, &a->s.ch, a->common.timeout_ms);
    if (rc == REPORT_EXIT_OK) {
        agent_reap(a);
        rc = fileop_start_in_mode(&a->f, &a->s.ch, a->common.timeout_ms, VMGMT_MODE_AGENT, "agent");
        if (rc)
            channel_release(&a->s.ch);
    }
    if (rc == REPORT_EXIT_OK) {
        a->f.table.on_request = agent_on_request;
        a->f.table.on_request_arg = a;
        a->core_generation = __atomic_load_n(&a->s.dev.hdr->core_generation, __ATOMIC_ACQUIRE);
        a->queue_head = a->queue_count = a->deferred_count = 0;
        a->last_active_ns = clock_now_ns();
        a->connected = true;
        agent_say_hello(a);
        fprintf(stderr, "agent: serving host copies on channel %u of %s again (pid %d)\n", a->s.ch.index, a->s.dev.bdf, (int)getpid());
    } else {
        session_close(&a->s);
    }
    a->rollback_to_report = true;
    return false;
}

int agent_main(int argc, char **argv)
{
    struct agent *a = calloc(1, sizeof(*a));
    if (!a)
        return report_error(REPORT_EXIT_SYSTEM, "agent: out of memory for its %zu-byte state", sizeof(*a));
    int rc = agent_parse(argc, argv, a);
    if (rc) {
        free(a);
        return rc;
    }
    signals_install();
    signal(SIGHUP, SIG_IGN);
#ifdef VMGMT_GUEST_CRASH_AT_START
    fprintf(stderr, "agent: version %s is a test build that crashes at start (VMGMT_GUEST_CRASH_AT_START)\n", update_version());
    abort();
#endif
#ifdef VMGMT_GUEST_CRASH_UNLESS_TAKEOVER
    if (a->takeover_fd < 0) {
        fprintf(stderr, "agent: version %s is a test build that crashes unless it takes over in an update (VMGMT_GUEST_CRASH_UNLESS_TAKEOVER)\n", update_version());
        abort();
    }
#endif
    update_init(&a->up, a->installed_as, a->common.verbose, a->no_stats);
    if (a->takeover_fd >= 0) {
        rc = update_takeover_begin(a->takeover_fd, &a->adopt);
        if (rc) {
            free(a);
            return rc;
        }
        a->common.adopt = &a->adopt;
        if (a->adopt.bdf[0])
            a->common.bdf = a->adopt.bdf;
    } else if (!a->no_stats) {
        agent_start_stats(a);
    }
    int last_rc = -1;
    while (!signals_stop_requested()) {
        if (!a->connected && agent_connect_logged(a, &last_rc)) {
            if (a->takeover_fd >= 0) {
                /* The old agent sees us exit and rolls back. */
                rc = last_rc;
                free(a);
                return rc;
            }
            agent_sleep_ms(AGENT_RETRY_MS);
            continue;
        }
        if (a->takeover_fd >= 0) {
            update_takeover_done(a->takeover_fd);
            a->takeover_fd = -1;
            a->common.adopt = NULL;
            if (!a->no_stats)
                agent_start_stats(a);
        }
        if (a->rollback_to_report) {
            struct update_agent ag = agent_update_view(a);
            update_report_rollback(&a->up, &ag);
            a->rollback_to_report = false;
        }
        uint64_t since = clock_now_ns();
        enum agent_outcome out = agent_serve(a);
        if (out == AGENT_LOST && a->handing_over)
            out = AGENT_HANDED; /* the new agent serves already: our channel went a moment early */
        if (out == AGENT_LOST && a->up.phase != UPDATE_IDLE) {
            /* Never leave a half-done handover behind a reconnect (it would reopen vfio under the new agent). */
            snprintf(a->up.reason, sizeof(a->up.reason), "the old agent lost its channel during the update, before the new one had reported in");
            struct update_agent ag = agent_update_view(a);
            update_resume(&a->up, &ag);
            a->rollback_to_report = true;
        }
        if (out == AGENT_HANDED) {
            int code;
            if (agent_hand_over(a, &code)) {
                free(a);
                return code;
            }
            continue;
        }
        agent_disconnect(a, out == AGENT_STOP);
        if (out == AGENT_STOP)
            break;
        last_rc = -1;
        agent_sleep_ms(clock_now_ns() - since < 1000000000ull ? AGENT_RETRY_MS : AGENT_RECONNECT_MS);
    }
    agent_stop_stats(a);
    fprintf(stderr, "agent: stopped by signal %d; channel released\n", signals_stop_requested());
    free(a);
    return REPORT_EXIT_OK;
}
