#include "debug.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "device.h"
#include "inflight.h"
#include "report.h"
#include "session.h"
#include "signals.h"
#include "wait.h"

#define DEBUG_DEFAULT_WAIT_MS 2000u
#define DEBUG_DEFAULT_TIMEOUT_MS 2000u

enum debug_sub { DEBUG_RAW, DEBUG_POKE_PROD };

struct debug_options {
    struct cli_common common;
    enum debug_sub sub;
    uint32_t mode;              /* MODE to SET_MODE first; MODE_NONE = none */
    bool has_type, has_length;
    struct vmgmt_msg msg;
    uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
    uint32_t payload_bytes;
    uint32_t wait_ms;
    uint32_t prod;              /* poke-prod VALUE */
};

static int debug_parse_hex(const char *text, struct debug_options *o)
{
    size_t n = strlen(text);
    if (n % 2 || n / 2 > sizeof(o->payload))
        return cli_usage_error("--payload '%s' is not an even number of hex digits of at most 4096 bytes", text);
    for (size_t i = 0; i < n / 2; i++) {
        char byte[3] = { text[2 * i], text[2 * i + 1], '\0' };
        char *end;
        unsigned long v = strtoul(byte, &end, 16);
        if (*end || byte[0] == '-' || byte[0] == '+' || byte[0] == ' ')
            return cli_usage_error("--payload '%s' holds a character that is not a hex digit", text);
        o->payload[i] = (uint8_t)v;
    }
    o->payload_bytes = (uint32_t)(n / 2);
    return REPORT_EXIT_OK;
}

static int debug_parse_i32(const char *text, int32_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 0);
    if (errno || end == text || *end || v < INT32_MIN || v > INT32_MAX)
        return cli_usage_error("--status '%s' is not a whole number that fits 32 signed bits", text);
    *out = (int32_t)v;
    return REPORT_EXIT_OK;
}

static int debug_parse(int argc, char **argv, struct debug_options *o)
{
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' },       { "wait", required_argument, NULL, 'w' },
        { "spin-us", required_argument, NULL, 's' }, { "mode", required_argument, NULL, 'M' },   { "type", required_argument, NULL, 'T' },
        { "flags", required_argument, NULL, 'F' },  { "length", required_argument, NULL, 'L' },  { "id", required_argument, NULL, 'I' },
        { "status", required_argument, NULL, 'S' }, { "payload", required_argument, NULL, 'P' }, { "wait-ms", required_argument, NULL, 'W' },
        { NULL, 0, NULL, 0 },
    };
    *o = (struct debug_options){ .common = { .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = DEBUG_DEFAULT_TIMEOUT_MS },
                                 .msg = { .request_id = 1 }, .wait_ms = DEBUG_DEFAULT_WAIT_MS };
    if (argc < 3)
        return cli_usage_error("debug needs a subcommand%s: raw or poke-prod", "");
    if (strcmp(argv[2], "raw") == 0)
        o->sub = DEBUG_RAW;
    else if (strcmp(argv[2], "poke-prod") == 0)
        o->sub = DEBUG_POKE_PROD;
    else
        return cli_usage_error("unknown debug subcommand '%s': use raw or poke-prod", argv[2]);
    optind = 3;
    opterr = 0;
    int c;
    uint32_t v;
    while ((c = getopt_long(argc, argv, ":d:v", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        if (o->sub == DEBUG_POKE_PROD && strchr("MTFLISP", c))
            return cli_usage_error("%s is an option of debug raw, not of debug poke-prod", argv[optind - 1]);
        switch (c) {
        case 'd': o->common.bdf = optarg; break;
        case 'v': o->common.verbose = true; break;
        case 'w': rc = cli_parse_wait(optarg, &o->common.wait); break;
        case 's': rc = cli_parse_u32(optarg, "spin time --spin-us (microseconds)", 0, 1000000, &o->common.spin_us); break;
        case 'M':
            if (strcmp(optarg, "none") == 0)
                o->mode = VMGMT_MODE_NONE;
            else if (strcmp(optarg, "file") == 0)
                o->mode = VMGMT_MODE_FILE;
            else if (strcmp(optarg, "chat") == 0)
                o->mode = VMGMT_MODE_CHAT;
            else if (strcmp(optarg, "stats") == 0)
                o->mode = VMGMT_MODE_STATS;
            else
                return cli_usage_error("--mode '%s' is not one of none, file, chat, stats", optarg);
            break;
        case 'T':
            rc = cli_parse_u32_base(optarg, 0, "message type --type", 0, 0xffff, &v);
            o->msg.type = (uint16_t)v;
            o->has_type = true;
            break;
        case 'F':
            rc = cli_parse_u32_base(optarg, 0, "message flags --flags", 0, 0xffff, &v);
            o->msg.flags = (uint16_t)v;
            break;
        case 'L':
            rc = cli_parse_u32_base(optarg, 0, "message length --length", 0, UINT32_MAX, &o->msg.length);
            o->has_length = true;
            break;
        case 'I': rc = cli_parse_u32_base(optarg, 0, "request id --id", 0, UINT32_MAX, &o->msg.request_id); break;
        case 'S': rc = debug_parse_i32(optarg, &o->msg.status); break;
        case 'P': rc = debug_parse_hex(optarg, o); break;
        case 'W': rc = cli_parse_u32(optarg, "--wait-ms (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &o->wait_ms); break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (o->sub == DEBUG_RAW) {
        if (!o->has_type)
            return cli_usage_error("debug raw needs --type T%s", "");
        if (optind < argc)
            return cli_usage_error("unexpected argument '%s'", argv[optind]);
        if (!o->has_length)
            o->msg.length = o->payload_bytes;
        return REPORT_EXIT_OK;
    }
    if (argc - optind != 1)
        return cli_usage_error("debug poke-prod takes one VALUE%s (the g2c producer index to publish)", "");
    return cli_parse_u32_base(argv[optind], 0, "producer index VALUE", 0, UINT32_MAX, &o->prod);
}

static void debug_on_push(void *arg, const struct vmgmt_msg *msg, const uint8_t *payload);

static bool debug_something_came_back(void *arg)
{
    const struct channel *ch = arg;
    return ring_can_consume(&ch->c2g) || __atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE) != VMGMT_CHANNEL_STATE_READY;
}

/* Waits for a response or a state change and prints them. */
static int debug_report(struct channel *ch, const struct debug_options *o)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)o->wait_ms * 1000000ull;
    enum wait_result r = wait_until(ch->dev, debug_something_came_back, ch, &ch->c2g.ring->need_wakeup, deadline);
    if (r == WAIT_INTERRUPTED)
        return report_error(REPORT_EXIT_SYSTEM, "interrupted while waiting for the core's reaction; channel %u released", ch->index);
    bool any = false;
    while (ring_can_consume(&ch->c2g)) {
        struct vmgmt_msg msg;
        uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
        enum ring_result rr = ring_consume(&ch->c2g, &msg, payload, sizeof(payload));
        if (rr == RING_OK && !(msg.type & VMGMT_MSG_RESPONSE_BIT) && msg.request_id == 0) {
            debug_on_push(NULL, &msg, payload);
            if (!ring_can_consume(&ch->c2g))
                wait_until(ch->dev, debug_something_came_back, ch, &ch->c2g.ring->need_wakeup, deadline);
            continue;
        }
        if (rr == RING_OK || rr == RING_BAD_LENGTH) {
            printf("response type=0x%04x id=%u status=%d (%s)\n", msg.type, msg.request_id, msg.status, vmgmt_status_text(msg.status));
            if (rr == RING_BAD_LENGTH)
                report_error(REPORT_EXIT_OK, "the response claims %u payload bytes, more than a %u-byte slot holds", msg.length, ch->c2g.slot_size);
        } else {
            report_error(REPORT_EXIT_OK, "the core's c2g producer index %u is out of range (our consumer index %u)",
                         __atomic_load_n(&ch->c2g.ring->prod, __ATOMIC_ACQUIRE), ch->c2g.local);
        }
        any = true;
    }
    uint32_t state = __atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE);
    if (state != VMGMT_CHANNEL_STATE_READY) {
        int32_t last = __atomic_load_n(&ch->ctl->last_status, __ATOMIC_ACQUIRE);
        printf("channel state=%s last_status=%d (%s)\n", channel_state_name(state), last, vmgmt_status_text(last));
        any = true;
    }
    fflush(stdout);
    if (!any)
        return report_error(REPORT_EXIT_TIMEOUT,
                            "no response and no channel state change on channel %u within %u ms (the core ignored the message, or is not running; raise --wait-ms)",
                            ch->index, o->wait_ms);
    return REPORT_EXIT_OK;
}

/* A push the core sends in the channel's mode (stats: STATS_CONFIG at the claim): not what we wait for. */
static void debug_on_push(void *arg, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    (void)arg;
    (void)payload;
    fprintf(stderr, "vmgmt-guest: debug: skipped a push of type 0x%04x from the core\n", msg->type);
}

static int debug_set_mode(struct channel *ch, const struct debug_options *o)
{
    struct inflight t;
    struct inflight_answer a;
    inflight_init(&t, ch, o->common.timeout_ms);
    t.on_request = debug_on_push;
    struct vmgmt_set_mode req = { .mode = o->mode };
    int rc = inflight_call(&t, VMGMT_MSG_SET_MODE, &req, sizeof(req), &a, "SET_MODE");
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK)
        return report_error(REPORT_EXIT_REFUSED, "set mode %u on channel %u: %s (status %d)", o->mode, ch->index, vmgmt_status_text(a.status), a.status);
    return REPORT_EXIT_OK;
}

static int debug_run(struct channel *ch, const struct debug_options *o)
{
    if (o->sub == DEBUG_POKE_PROD) {
        report_verbose(ch->dev->verbose, "channel %u: g2c prod %u -> %u", ch->index, ch->g2c.local, o->prod);
        ring_poke_prod(&ch->g2c, o->prod);
    } else {
        if (o->mode != VMGMT_MODE_NONE) {
            int rc = debug_set_mode(ch, o);
            if (rc)
                return rc;
        }
        enum ring_result r = ring_produce_raw(&ch->g2c, &o->msg, o->payload, o->payload_bytes);
        if (r != RING_OK)
            return report_error(REPORT_EXIT_PROTOCOL, "the g2c ring of channel %u is %s; nothing was sent", ch->index,
                                r == RING_FULL ? "full" : "corrupt (consumer index out of range)");
        report_verbose(ch->dev->verbose, "channel %u: wrote type 0x%04x flags 0x%04x length %u id %u status %d with %u payload bytes", ch->index,
                       o->msg.type, o->msg.flags, o->msg.length, o->msg.request_id, o->msg.status, o->payload_bytes);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    device_notify_core(ch->dev, VMGMT_VECTOR_RING);
    return debug_report(ch, o);
}

static int debug_body(struct session *s, void *ctx)
{
    return debug_run(&s->ch, ctx);
}

int debug_main(int argc, char **argv)
{
    struct debug_options o;
    int rc = debug_parse(argc, argv, &o);
    return rc ? rc : session_run(&o.common, debug_body, &o);
}
