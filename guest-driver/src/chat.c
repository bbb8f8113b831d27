#include "chat.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "cli.h"
#include "clock.h"
#include "inflight.h"
#include "ping.h"
#include "report.h"
#include "session.h"
#include "signals.h"
#include "slice.h"
#include "wait.h"

#define CHAT_DEFAULT_TIMEOUT_MS 30000u
#define CHAT_DEFAULT_CALL_TIMEOUT_MS 10000u
#define CHAT_MAX_NAMES 16
#define CHAT_SEND_WINDOW 16u                 /* sends in flight at once (each with its own slice buffer) */
#define CHAT_BUF_BYTES VMGMT_CHAT_LIMIT_MAX_MESSAGE_BYTES
#define CHAT_WARM_BACKOFF_NS 2000000ull      /* polling: longest sleep for CHAT_WARM_NS after a message */
#define CHAT_WARM_NS 10000000000ull
#define CHAT_IDLE_BACKOFF_NS 100000000ull    /* then this: a message after a quiet spell waits up to 100 ms */
#define CHAT_CALLS_QUEUED 16                 /* calls that arrive while one is being answered */
#define CHAT_MAX_CALL_COUNT 1000000u         /* call --count: round trips timed in one process */

enum chat_command { CHAT_LISTEN, CHAT_PEERS, CHAT_SEND, CHAT_CALL };

struct chat_call {
    uint32_t call_id;
    uint32_t length;
    char from_vm[256], from_name[256], to[256];
    uint8_t *data;               /* CHAT_BUF_BYTES, malloc'd */
};

struct chat {
    struct cli_common common;
    enum chat_command command;
    const char *names[CHAT_MAX_NAMES];
    unsigned name_count;
    const char *target;
    const char *message;         /* argument, or "-" for stdin */
    const char *from;            /* --from */
    const char *exec;            /* --exec CMD */
    bool json, watch, lines, echo, quiet;
    uint32_t count;              /* call --count N: N calls in a row, a summary line instead of the replies */
    uint32_t gap_ms;             /* call --gap-ms: a pause between them (the callee falls asleep) */
    uint32_t call_timeout_ms;
    struct session *s;
    struct inflight table;
    struct slice slice;
    uint32_t guest_area;         /* slice offset of our half */
    uint32_t rx_start, rx_size;  /* the receive area, as the core computes it */
    bool took;                   /* we took deliveries since the last CHAT_RX_FREED */
    uint64_t last_active_ns;
    uint64_t received;
    struct chat_call calls[CHAT_CALLS_QUEUED];
    unsigned call_head, call_count;
    uint8_t buf[CHAT_BUF_BYTES]; /* a message copied out of the receive area */
    int status_rc;               /* a failure seen inside a callback */
};

static int chat_usage(const char *why, const char *value)
{
    return cli_usage_error(why, value);
}

static int chat_parse(int argc, char **argv, struct chat *c)
{
    struct cli_common *o = &c->common;
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' }, { "timeout", required_argument, NULL, 't' },
        { "wait", required_argument, NULL, 'w' },   { "json", no_argument, NULL, 'j' },     { "watch", no_argument, NULL, 'W' },
        { "exec", required_argument, NULL, 'e' },   { "from", required_argument, NULL, 'f' }, { "lines", no_argument, NULL, 'l' },
        { "call-timeout", required_argument, NULL, 'T' }, { "spin-us", required_argument, NULL, 's' }, { "echo", no_argument, NULL, 'E' }, { "quiet", no_argument, NULL, 'q' },
        { "count", required_argument, NULL, 'n' }, { "gap-ms", required_argument, NULL, 'g' }, { NULL, 0, NULL, 0 },
    };
    *o = (struct cli_common){ .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = CHAT_DEFAULT_TIMEOUT_MS };
    c->call_timeout_ms = CHAT_DEFAULT_CALL_TIMEOUT_MS;
    c->count = 1;
    if (argc < 3)
        return chat_usage("chat needs a subcommand: register, listen, peers, send or call%s", "");
    const char *sub = argv[2];
    if (strcmp(sub, "register") == 0 || strcmp(sub, "listen") == 0)
        c->command = CHAT_LISTEN;
    else if (strcmp(sub, "peers") == 0)
        c->command = CHAT_PEERS;
    else if (strcmp(sub, "send") == 0)
        c->command = CHAT_SEND;
    else if (strcmp(sub, "call") == 0)
        c->command = CHAT_CALL;
    else
        return chat_usage("unknown chat subcommand '%s': use register, listen, peers, send or call", sub);
    /* Every chat command waits on the agent's wake-up relay when one serves the device, else polls. */
    o->wait = CLI_WAIT_AUTO;
    optind = 3;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":d:vt:q", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (ch) {
        case 'd': o->bdf = optarg; break;
        case 'v': o->verbose = true; break;
        case 't': rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &o->timeout_ms); break;
        case 'T': rc = cli_parse_u32(optarg, "call timeout --call-timeout (milliseconds)", 1, VMGMT_CHAT_LIMIT_MAX_CALL_TIMEOUT_MS, &c->call_timeout_ms); break;
        case 'w': rc = cli_parse_wait(optarg, &o->wait); break;
        case 'j': c->json = true; break;
        case 'W': c->watch = true; break;
        case 'e': c->exec = optarg; break;
        case 'f': c->from = optarg; break;
        case 'l': c->lines = true; break;
        case 'E': c->echo = true; break;
        case 'q': c->quiet = true; break;
        case 's': rc = cli_parse_u32(optarg, "spin time --spin-us (microseconds)", 0, 1000000, &o->spin_us); break;
        case 'n': rc = cli_parse_u32(optarg, "call count --count", 1, CHAT_MAX_CALL_COUNT, &c->count); break;
        case 'g': rc = cli_parse_u32(optarg, "pause between calls --gap-ms", 0, 60000, &c->gap_ms); break;
        case ':': return chat_usage("option %s needs a value", argv[optind - 1]);
        default: return chat_usage("unknown option '%s' for chat", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    int left = argc - optind;
    char **rest = argv + optind;
    switch (c->command) {
    case CHAT_LISTEN:
        if (left < 1)
            return chat_usage("chat %s needs at least one NAME to register", sub);
        if (left > CHAT_MAX_NAMES)
            return chat_usage("chat register takes at most 16 names%s", "");
        for (int i = 0; i < left; i++)
            c->names[c->name_count++] = rest[i];
        break;
    case CHAT_PEERS:
        if (left > 0)
            return chat_usage("chat peers takes no arguments, not '%s'", rest[0]);
        break;
    case CHAT_SEND:
    case CHAT_CALL:
        if (left != 2)
            return chat_usage("chat %s needs TARGET and MESSAGE (or - for stdin)", sub);
        c->target = rest[0];
        c->message = rest[1];
        if (c->lines && strcmp(c->message, "-") != 0)
            return chat_usage("--lines reads messages from stdin: give - as MESSAGE%s", "");
        if (c->lines && c->command == CHAT_CALL)
            return chat_usage("--lines is an option of send%s", "");
        break;
    }
    if (c->exec && c->command != CHAT_LISTEN)
        return chat_usage("--exec is an option of register/listen%s", "");
    if (c->echo && (c->command != CHAT_LISTEN || c->exec))
        return chat_usage("--echo is an option of register/listen, instead of --exec%s", "");
    if (c->quiet && c->command != CHAT_LISTEN)
        return chat_usage("-q is an option of register/listen%s", "");
    if (c->count != 1 && c->command != CHAT_CALL)
        return chat_usage("--count is an option of call%s", "");
    if (c->watch && c->command != CHAT_PEERS)
        return chat_usage("--watch is an option of peers%s", "");
    return REPORT_EXIT_OK;
}

/* ---- output ---- */

static void chat_json_string(FILE *out, const uint8_t *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        uint8_t b = s[i];
        if (b == '"' || b == '\\')
            fprintf(out, "\\%c", b);
        else if (b == '\n')
            fputs("\\n", out);
        else if (b < 0x20 || b == 0x7f)
            fprintf(out, "\\u%04x", b);
        else
            fputc(b, out);
    }
    fputc('"', out);
}

static const char *chat_reason_name(uint8_t reason)
{
    switch (reason) {
    case VMGMT_CHAT_REASON_REGISTERED: return "registered";
    case VMGMT_CHAT_REASON_UNREGISTERED: return "unregistered";
    case VMGMT_CHAT_REASON_PROCESS_GONE: return "process gone";
    case VMGMT_CHAT_REASON_VM_STOPPED: return "vm stopped or crashed";
    case VMGMT_CHAT_REASON_HOST_LEFT: return "host name removed";
    case VMGMT_CHAT_REASON_HOST_UNREACHABLE: return "its host is unreachable";
    default: return "unknown reason";
    }
}

/* "vm-a/alice", "@host/ops", "vm-a/-" for a sender without a name. */
static void chat_print_party(FILE *out, const char *vm, const char *name)
{
    fprintf(out, "%s/%s", vm[0] ? vm : "@host", name[0] ? name : "-");
}

/* ---- requests ---- */

static int chat_refused(const char *op, const char *what, int32_t status)
{
    return report_error(status >= 1 && status <= 12 ? REPORT_EXIT_PROTOCOL : REPORT_EXIT_REFUSED, "%s %s: %s (status %d)", op, what, vmgmt_status_text(status), status);
}

static int chat_call_core(struct chat *c, uint16_t type, const void *payload, uint32_t length, struct inflight_answer *a, const char *during)
{
    int rc = inflight_call(&c->table, type, payload, length, a, during);
    if (rc)
        return rc;
    return c->status_rc;
}

static int chat_name_request(struct chat *c, uint16_t type, const char *name, const char *op)
{
    uint8_t p[sizeof(struct vmgmt_chat_name) + 256];
    size_t n = strlen(name);
    if (n == 0 || n > VMGMT_CHAT_LIMIT_MAX_NAME_BYTES)
        return report_error(REPORT_EXIT_USAGE, "%s %s: %s (status %d)", op, name, vmgmt_status_text(VMGMT_ST_CHAT_BAD_NAME), VMGMT_ST_CHAT_BAD_NAME);
    struct vmgmt_chat_name req = { .name_len = (uint32_t)n };
    memcpy(p, &req, sizeof(req));
    memcpy(p + sizeof(req), name, n);
    struct inflight_answer a;
    int rc = chat_call_core(c, type, p, (uint32_t)(sizeof(req) + n), &a, op);
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK)
        return chat_refused(op, name, a.status);
    return REPORT_EXIT_OK;
}

static int chat_set_mode(struct chat *c)
{
    struct vmgmt_set_mode req = { .mode = VMGMT_MODE_CHAT };
    struct inflight_answer a;
    int rc = chat_call_core(c, VMGMT_MSG_SET_MODE, &req, sizeof(req), &a, "SET_MODE chat");
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK)
        return chat_refused("set mode chat on channel", "", a.status);
    return REPORT_EXIT_OK;
}

/* ---- what the core pushes ---- */

static volatile uint32_t *chat_rx_word(struct chat *c, size_t offset)
{
    return (volatile uint32_t *)(c->slice.base + offset);
}

static int chat_exec(struct chat *c, const struct chat_call *call, uint8_t *out, uint32_t *out_len, int32_t *status);

static bool chat_copy_str(char *dst, const uint8_t *src, uint32_t n)
{
    memcpy(dst, src, n);
    dst[n] = 0;
    return memchr(dst, 0, n) == NULL;
}

/* A CHAT_DELIVER: checked against the payload and the receive area, copied out, printed (or queued as a call). */
static void chat_on_deliver(struct chat *c, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct vmgmt_chat_deliver d;
    if (msg->length < sizeof(d)) {
        fprintf(stderr, "vmgmt-guest: chat: ignored a CHAT_DELIVER of %u bytes, shorter than its struct\n", msg->length);
        return;
    }
    memcpy(&d, payload, sizeof(d));
    uint32_t strs = (uint32_t)d.from_vm_len + d.from_name_len + d.to_name_len;
    bool in_slice = d.flags & VMGMT_CHAT_FLAG_IN_SLICE;
    uint32_t inline_len = in_slice ? 0 : d.data_len;
    if (msg->length != sizeof(d) + strs + inline_len || d.data_len > CHAT_BUF_BYTES ||
        (in_slice && (d.data_offset < c->rx_start || d.data_offset - c->rx_start > c->rx_size || d.data_len > c->rx_size - (d.data_offset - c->rx_start)))) {
        fprintf(stderr, "vmgmt-guest: chat: ignored a malformed CHAT_DELIVER (length %u, data_len %u, data_offset %u)\n", msg->length, d.data_len, d.data_offset);
        return;
    }
    struct chat_call one;
    struct chat_call *call = &one;
    bool is_call = d.flags & VMGMT_CHAT_FLAG_CALL;
    if (is_call && c->call_count < CHAT_CALLS_QUEUED)
        call = &c->calls[(c->call_head + c->call_count) % CHAT_CALLS_QUEUED];
    const uint8_t *p = payload + sizeof(d);
    chat_copy_str(call->from_vm, p, d.from_vm_len);
    chat_copy_str(call->from_name, p + d.from_vm_len, d.from_name_len);
    chat_copy_str(call->to, p + d.from_vm_len + d.from_name_len, d.to_name_len);
    const uint8_t *data = p + strs;
    if (in_slice) {
        memcpy(c->buf, c->slice.base + d.data_offset, d.data_len);
        data = c->buf;
        __atomic_store_n(chat_rx_word(c, offsetof(struct vmgmt_chat_rx, guest_tail)), d.rx_end, __ATOMIC_RELEASE);
    }
    c->took = true;
    c->received++;
    c->last_active_ns = clock_now_ns();
    if (c->quiet) {
        /* Counted, not printed. */
    } else if (c->json) {
        fputs("{\"from\":{\"vm\":", stdout);
        if (call->from_vm[0])
            chat_json_string(stdout, (const uint8_t *)call->from_vm, strlen(call->from_vm));
        else
            fputs("null", stdout);
        fputs(",\"name\":", stdout);
        chat_json_string(stdout, (const uint8_t *)call->from_name, strlen(call->from_name));
        fputs("},\"to\":", stdout);
        chat_json_string(stdout, (const uint8_t *)call->to, strlen(call->to));
        fprintf(stdout, ",\"call\":%s,\"broadcast\":%s,\"bytes\":%u,\"text\":", is_call ? "true" : "false",
                (d.flags & VMGMT_CHAT_FLAG_BROADCAST) ? "true" : "false", d.data_len);
        chat_json_string(stdout, data, d.data_len);
        fputs("}\n", stdout);
    } else {
        chat_print_party(stdout, call->from_vm, call->from_name);
        fprintf(stdout, " -> %s%s%s: ", call->to, is_call ? " (call)" : "", (d.flags & VMGMT_CHAT_FLAG_BROADCAST) ? " (group)" : "");
        fwrite(data, 1, d.data_len, stdout);
        fputc('\n', stdout);
    }
    if (!is_call)
        return;
    if (call == &one) {
        fprintf(stderr, "vmgmt-guest: chat: call %u from %s/%s not answered: %u calls wait already (the caller will time out)\n", d.call_id,
                one.from_vm, one.from_name, CHAT_CALLS_QUEUED);
        return;
    }
    if (!call->data && !(call->data = malloc(CHAT_BUF_BYTES))) {
        fprintf(stderr, "vmgmt-guest: chat: out of memory for call %u\n", d.call_id);
        return;
    }
    memcpy(call->data, data, d.data_len);
    call->length = d.data_len;
    call->call_id = d.call_id;
    c->call_count++;
}

static void chat_on_presence(struct chat *c, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct vmgmt_chat_presence pr;
    if (msg->length < sizeof(pr)) {
        fprintf(stderr, "vmgmt-guest: chat: ignored a CHAT_PRESENCE of %u bytes\n", msg->length);
        return;
    }
    memcpy(&pr, payload, sizeof(pr));
    if (msg->length != sizeof(pr) + pr.vm_len + pr.name_len) {
        fprintf(stderr, "vmgmt-guest: chat: ignored a malformed CHAT_PRESENCE\n");
        return;
    }
    char vm[256], name[256];
    chat_copy_str(vm, payload + sizeof(pr), pr.vm_len);
    chat_copy_str(name, payload + sizeof(pr) + pr.vm_len, pr.name_len);
    const char *event = pr.event == VMGMT_CHAT_PRESENCE_JOIN ? "join" : pr.event == VMGMT_CHAT_PRESENCE_LEAVE ? "leave" : "unknown";
    if (c->json) {
        fprintf(stdout, "{\"event\":\"%s\",\"reason\":\"%s\",\"vm\":", event, chat_reason_name(pr.reason));
        if (vm[0])
            chat_json_string(stdout, (const uint8_t *)vm, strlen(vm));
        else
            fputs("null", stdout);
        fputs(",\"name\":", stdout);
        chat_json_string(stdout, (const uint8_t *)name, strlen(name));
        fputs("}\n", stdout);
    } else {
        fprintf(stdout, "%s ", event);
        chat_print_party(stdout, vm, name);
        fprintf(stdout, " (%s)\n", chat_reason_name(pr.reason));
    }
    fflush(stdout);
}

/* Everything on c2g without RESPONSE_BIT: the core's pushes. */
static void chat_on_push(void *arg, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct chat *c = arg;
    if (msg->type == VMGMT_MSG_CHAT_DELIVER)
        chat_on_deliver(c, msg, payload);
    else if (msg->type == VMGMT_MSG_CHAT_PRESENCE)
        chat_on_presence(c, msg, payload);
    else
        fprintf(stderr, "vmgmt-guest: chat: ignored a message of type 0x%04x from the core\n", msg->type);
}

/* ---- the session ---- */

static int chat_start(struct chat *c, struct session *s)
{
    c->s = s;
    inflight_init(&c->table, &s->ch, c->common.timeout_ms);
    c->table.on_request = chat_on_push;
    c->table.on_request_arg = c;
    slice_attach(&c->slice, &s->dev, s->ch.index);
    c->guest_area = c->slice.size / 2;
    /* The core's receive area: [64, 64 + largest power of two <= slice/2 - 64). */
    c->rx_start = VMGMT_CHAT_LIMIT_RX_CONTROL_BYTES;
    uint32_t room = c->slice.size / 2 > c->rx_start ? c->slice.size / 2 - c->rx_start : 0;
    c->rx_size = 0;
    while (room && (uint64_t)c->rx_size * 2 <= room)
        c->rx_size = c->rx_size ? c->rx_size * 2 : 1;
    if (c->slice.size / 2 < CHAT_BUF_BYTES * (CHAT_SEND_WINDOW + 1))
        report_verbose(c->common.verbose, "chat: a %u-byte data slice: large messages are sent one at a time", c->slice.size);
    c->last_active_ns = clock_now_ns();
    return chat_set_mode(c);
}

/* Buffers in our half of the slice: CHAT_SEND_WINDOW send buffers, then the reply buffer. When the slice
 * is small, everything shares buffer 0 (then at most one large message is in flight). */
static uint32_t chat_buffer(const struct chat *c, uint32_t i)
{
    if (c->slice.size / 2 < CHAT_BUF_BYTES * (CHAT_SEND_WINDOW + 1))
        return c->guest_area;
    return c->guest_area + i * CHAT_BUF_BYTES;
}

static bool chat_small_slice(const struct chat *c)
{
    return c->slice.size / 2 < CHAT_BUF_BYTES * (CHAT_SEND_WINDOW + 1);
}

/* Whether a SEND of len bytes goes inline in the ring slot (else through a slice buffer). */
static bool chat_fits_inline(const struct chat *c, uint32_t len)
{
    const char *from = c->from ? c->from : "";
    return sizeof(struct vmgmt_chat_send) + strlen(from) + strlen(c->target) + len <= ring_max_payload(&c->s->ch.g2c);
}

/* Builds a SEND/CALL request in out; large data goes to slice buffer `buf`. */
static uint32_t chat_build_send(struct chat *c, uint8_t *out, const uint8_t *data, uint32_t len, uint32_t buf, bool call)
{
    const char *from = c->from ? c->from : "";
    uint16_t from_len = (uint16_t)strlen(from), target_len = (uint16_t)strlen(c->target);
    struct vmgmt_chat_send req = { .from_len = from_len, .target_len = target_len, .data_len = len };
    uint32_t head = (uint32_t)sizeof(req) + from_len + target_len;
    bool inline_data = head + len <= ring_max_payload(&c->s->ch.g2c);
    if (!inline_data) {
        req.flags = VMGMT_CHAT_FLAG_IN_SLICE;
        req.data_offset = chat_buffer(c, buf);
        memcpy(slice_at(&c->slice, req.data_offset), data, len);
    }
    if (call) {
        req.timeout_ms = c->call_timeout_ms;
        req.reply_offset = chat_buffer(c, CHAT_SEND_WINDOW);
        req.reply_cap = CHAT_BUF_BYTES;
    }
    memcpy(out, &req, sizeof(req));
    memcpy(out + sizeof(req), from, from_len);
    memcpy(out + sizeof(req) + from_len, c->target, target_len);
    if (inline_data)
        memcpy(out + head, data, len);
    return head + (inline_data ? len : 0);
}

/* Reads MESSAGE: the argument, or stdin (at most 64 KiB). */
static int chat_read_message(const struct chat *c, uint8_t *out, uint32_t *len)
{
    if (strcmp(c->message, "-") != 0) {
        size_t n = strlen(c->message);
        if (n > CHAT_BUF_BYTES)
            return report_error(REPORT_EXIT_USAGE, "the message is %zu bytes, more than %u", n, CHAT_BUF_BYTES);
        memcpy(out, c->message, n);
        *len = (uint32_t)n;
        return REPORT_EXIT_OK;
    }
    size_t n = fread(out, 1, CHAT_BUF_BYTES, stdin);
    if (ferror(stdin))
        return report_error(REPORT_EXIT_SYSTEM, "reading the message from stdin failed: %s", strerror(errno));
    if (n == CHAT_BUF_BYTES && fgetc(stdin) != EOF)
        return report_error(REPORT_EXIT_USAGE, "the message on stdin is more than %u bytes (TOO_LARGE)", CHAT_BUF_BYTES);
    *len = (uint32_t)n;
    return REPORT_EXIT_OK;
}

static int chat_check_send_answer(struct chat *c, const struct inflight_answer *a, const char *what)
{
    if (a->status != VMGMT_ST_OK)
        return chat_refused("send to", what, a->status);
    if (strcmp(c->target, VMGMT_CHAT_BROADCAST_TARGET) == 0 && a->length >= sizeof(struct vmgmt_chat_send_result)) {
        struct vmgmt_chat_send_result r;
        memcpy(&r, a->payload, sizeof(r));
        report_verbose(c->common.verbose, "chat: the group got it: %u delivered, %u not", r.delivered, r.refused);
    }
    return REPORT_EXIT_OK;
}

/* send: one message, or with --lines one per line of stdin, pipelined CHAT_SEND_WINDOW deep. */
static int chat_send(struct chat *c)
{
    uint8_t req[VMGMT_LIMIT_MAX_SLOT_BYTES];
    struct inflight_answer a;
    uint64_t started = clock_now_ns(), count = 0, bytes = 0;
    int rc = REPORT_EXIT_OK;
    if (!c->lines) {
        uint32_t len;
        rc = chat_read_message(c, c->buf, &len);
        if (rc)
            return rc;
        uint32_t n = chat_build_send(c, req, c->buf, len, 0, false);
        rc = chat_call_core(c, VMGMT_MSG_CHAT_SEND, req, n, &a, "CHAT_SEND");
        return rc ? rc : chat_check_send_answer(c, &a, c->target);
    }
    /* Inline messages need only a ring slot: as many in flight as the core allows. Larger ones each hold
     * one of the slice buffers until answered. Tag CHAT_SEND_WINDOW: no buffer. */
    uint32_t window = c->table.limit;
    uint32_t buffers = chat_small_slice(c) ? 1 : CHAT_SEND_WINDOW;
    bool busy[CHAT_SEND_WINDOW] = { false };
    uint32_t busy_count = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while (!rc && (got = getline(&line, &cap, stdin)) >= 0) {
        uint32_t len = (uint32_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        if (len > CHAT_BUF_BYTES) {
            rc = report_error(REPORT_EXIT_USAGE, "line %" PRIu64 " is %u bytes, more than %u (TOO_LARGE)", count + 1, len, CHAT_BUF_BYTES);
            break;
        }
        bool inline_data = chat_fits_inline(c, len);
        while (c->table.count >= window || (!inline_data && busy_count >= buffers)) {
            rc = inflight_next(&c->table, &a, "CHAT_SEND");
            if (rc)
                break;
            if (a.tag < CHAT_SEND_WINDOW && busy[a.tag]) {
                busy[a.tag] = false;
                busy_count--;
            }
            rc = chat_check_send_answer(c, &a, c->target);
            if (rc)
                break;
        }
        if (rc)
            break;
        uint32_t buf = CHAT_SEND_WINDOW;
        if (!inline_data)
            for (buf = 0; buf < buffers && busy[buf]; buf++) {}
        uint32_t n = chat_build_send(c, req, (const uint8_t *)line, len, buf, false);
        rc = inflight_send(&c->table, VMGMT_MSG_CHAT_SEND, req, n, buf, "CHAT_SEND", NULL);
        if (rc)
            break;
        if (!inline_data) {
            busy[buf] = true;
            busy_count++;
        }
        count++;
        bytes += len;
    }
    free(line);
    while (c->table.count > 0 && !c->table.broken) {
        int r = inflight_next(&c->table, &a, "CHAT_SEND");
        if (!r)
            r = chat_check_send_answer(c, &a, c->target);
        if (r && !rc)
            rc = r;
        if (r && c->table.broken)
            break;
    }
    report_verbose(c->common.verbose, "chat: sent %" PRIu64 " messages, %" PRIu64 " bytes in %" PRIu64 " ms", count, bytes, (clock_now_ns() - started) / 1000000);
    return rc;
}

/* call --count N: the same call N times in a row; prints one summary line of the round trips (as ping does) instead of the replies. */
static int chat_call_repeat(struct chat *c, const uint8_t *req, uint32_t n, uint32_t len)
{
    uint64_t *rtt_ns = calloc(c->count, sizeof(*rtt_ns));
    if (!rtt_ns)
        return report_error(REPORT_EXIT_SYSTEM, "out of memory for %u call results (use a smaller --count)", c->count);
    static uint8_t copy[VMGMT_LIMIT_MAX_SLOT_BYTES];
    int rc = REPORT_EXIT_OK;
    uint32_t reply_bytes = 0;
    for (uint32_t i = 0; i < c->count && !rc; i++) {
        if (c->gap_ms && i > 0) {
            struct timespec ts = { .tv_sec = c->gap_ms / 1000, .tv_nsec = (long)(c->gap_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        /* The request buffer may point into the slice (large messages): rebuild nothing, resend as built. */
        memcpy(copy, req, n);
        struct inflight_answer a;
        uint64_t start = clock_now_ns();
        rc = chat_call_core(c, VMGMT_MSG_CHAT_CALL, copy, n, &a, "CHAT_CALL");
        rtt_ns[i] = clock_now_ns() - start;
        if (rc)
            break;
        if (a.status != VMGMT_ST_OK) {
            rc = chat_refused("call", c->target, a.status);
            break;
        }
        struct vmgmt_chat_call_result r;
        if (a.length < sizeof(r)) {
            rc = report_error(REPORT_EXIT_PROTOCOL, "call %s: the core's answer has %u bytes, less than struct vmgmt_chat_call_result", c->target, a.length);
            break;
        }
        memcpy(&r, a.payload, sizeof(r));
        if (r.reply_status != 0)
            rc = report_error(REPORT_EXIT_REFUSED, "call %s %u: the callee answered with its status %d", c->target, i + 1, r.reply_status);
        reply_bytes = r.data_len;
    }
    if (!rc) {
        struct ping_stats st;
        ping_stats_compute(rtt_ns, c->count, &st);
        printf("call: n=%u bytes=%u reply_bytes=%u min_us=%.1f median_us=%.1f p99_us=%.1f max_us=%.1f wait=%s\n", c->count, len, reply_bytes, (double)st.min_ns / 1000.0,
               (double)st.median_ns / 1000.0, (double)st.p99_ns / 1000.0, (double)st.max_ns / 1000.0, dev_wait_name(c->s->dev.wait));
    }
    free(rtt_ns);
    return rc;
}

/* call: one message; the reply goes to stdout as it came. */
static int chat_call(struct chat *c)
{
    uint8_t req[VMGMT_LIMIT_MAX_SLOT_BYTES];
    uint32_t len;
    int rc = chat_read_message(c, c->buf, &len);
    if (rc)
        return rc;
    uint32_t n = chat_build_send(c, req, c->buf, len, 0, true);
    /* The answer waits for the callee: allow the call's own timeout on top of the usual one. */
    c->table.timeout_ms = c->common.timeout_ms + c->call_timeout_ms;
    struct inflight_answer a;
    if (c->count > 1)
        return chat_call_repeat(c, req, n, len);
    rc = chat_call_core(c, VMGMT_MSG_CHAT_CALL, req, n, &a, "CHAT_CALL");
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK)
        return chat_refused("call", c->target, a.status);
    struct vmgmt_chat_call_result r;
    if (a.length < sizeof(r))
        return report_error(REPORT_EXIT_PROTOCOL, "call %s: the core's answer has %u bytes, less than struct vmgmt_chat_call_result", c->target, a.length);
    memcpy(&r, a.payload, sizeof(r));
    const uint8_t *data = a.payload + sizeof(r);
    if (r.flags & VMGMT_CHAT_FLAG_IN_SLICE) {
        if (r.data_len > CHAT_BUF_BYTES)
            return report_error(REPORT_EXIT_PROTOCOL, "call %s: a reply of %u bytes, more than the %u-byte buffer", c->target, r.data_len, CHAT_BUF_BYTES);
        memcpy(c->buf, slice_at(&c->slice, chat_buffer(c, CHAT_SEND_WINDOW)), r.data_len);
        data = c->buf;
    } else if (a.length != sizeof(r) + r.data_len) {
        return report_error(REPORT_EXIT_PROTOCOL, "call %s: the answer's reply length %u does not match its %u bytes", c->target, r.data_len, a.length);
    }
    if (fwrite(data, 1, r.data_len, stdout) != r.data_len)
        return report_error(REPORT_EXIT_SYSTEM, "writing the reply to stdout failed");
    if (r.reply_status != 0)
        return report_error(REPORT_EXIT_REFUSED, "call %s: the callee answered with its status %d", c->target, r.reply_status);
    return REPORT_EXIT_OK;
}

/* Runs --exec CMD with the call's data on stdin; its stdout (at most 64 KiB) is the reply, its exit status
 * the reply status. CHAT_FROM_VM, CHAT_FROM_NAME and CHAT_TO tell it who asked. */
static int chat_exec(struct chat *c, const struct chat_call *call, uint8_t *out, uint32_t *out_len, int32_t *status)
{
    int in = memfd_create("vmgmt-chat-call", MFD_CLOEXEC);
    int pipefd[2];
    if (in < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
        if (in >= 0)
            close(in);
        return report_error(REPORT_EXIT_SYSTEM, "chat: --exec: %s", strerror(errno));
    }
    if (write(in, call->data, call->length) != (ssize_t)call->length || lseek(in, 0, SEEK_SET) < 0) {
        close(in);
        close(pipefd[0]);
        close(pipefd[1]);
        return report_error(REPORT_EXIT_SYSTEM, "chat: --exec: staging the call's input failed: %s", strerror(errno));
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in, STDIN_FILENO);
        dup2(pipefd[1], STDOUT_FILENO);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        setenv("CHAT_FROM_VM", call->from_vm, 1);
        setenv("CHAT_FROM_NAME", call->from_name, 1);
        setenv("CHAT_TO", call->to, 1);
        execl("/bin/sh", "sh", "-c", c->exec, (char *)NULL);
        _exit(127);
    }
    close(in);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return report_error(REPORT_EXIT_SYSTEM, "chat: --exec: fork failed: %s", strerror(errno));
    }
    uint32_t used = 0;
    for (;;) {
        uint8_t sink[4096];
        bool full = used == CHAT_BUF_BYTES;
        ssize_t n = read(pipefd[0], full ? sink : out + used, full ? sizeof(sink) : CHAT_BUF_BYTES - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!full)
            used += (uint32_t)n;
    }
    close(pipefd[0]);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    *out_len = used;
    return REPORT_EXIT_OK;
}

/* Answers the oldest queued call: --exec's output, or without --exec status 1 and a note. */
static int chat_answer_call(struct chat *c)
{
    struct chat_call *call = &c->calls[c->call_head];
    c->call_head = (c->call_head + 1) % CHAT_CALLS_QUEUED;
    c->call_count--;
    static uint8_t out[CHAT_BUF_BYTES];
    uint32_t len = 0;
    int32_t status = 1;
    if (c->exec) {
        int rc = chat_exec(c, call, out, &len, &status);
        if (rc)
            return rc;
    } else if (c->echo) {
        memcpy(out, call->data, call->length);
        len = call->length;
        status = 0;
    } else {
        static const char note[] = "this listener answers no calls (start it with --exec CMD)";
        memcpy(out, note, sizeof(note) - 1);
        len = sizeof(note) - 1;
    }
    uint8_t req[VMGMT_LIMIT_MAX_SLOT_BYTES];
    struct vmgmt_chat_reply r = { .call_id = call->call_id, .status = status, .data_len = len };
    uint32_t n = (uint32_t)sizeof(r);
    if (sizeof(r) + len <= ring_max_payload(&c->s->ch.g2c)) {
        memcpy(req + sizeof(r), out, len);
        n += len;
    } else {
        r.flags = VMGMT_CHAT_FLAG_IN_SLICE;
        r.data_offset = chat_buffer(c, CHAT_SEND_WINDOW);
        memcpy(slice_at(&c->slice, r.data_offset), out, len);
    }
    memcpy(req, &r, sizeof(r));
    struct inflight_answer a;
    int rc = chat_call_core(c, VMGMT_MSG_CHAT_REPLY, req, n, &a, "CHAT_REPLY");
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK)
        fprintf(stderr, "vmgmt-guest: chat: reply to call %u from %s/%s: %s (status %d)\n", call->call_id, call->from_vm, call->from_name,
                vmgmt_status_text(a.status), a.status);
    return REPORT_EXIT_OK;
}

/* The core waits for us (ring slots or receive-area space) and we took messages since we last said so. */
static bool chat_core_waits(struct chat *c)
{
    return c->took && __atomic_load_n(chat_rx_word(c, offsetof(struct vmgmt_chat_rx, host_waiting)), __ATOMIC_ACQUIRE);
}

static bool chat_wakeable(void *arg)
{
    struct chat *c = arg;
    return ring_can_consume(&c->s->ch.c2g) || chat_core_waits(c) ||
           __atomic_load_n(&c->s->ch.ctl->state, __ATOMIC_ACQUIRE) != VMGMT_CHANNEL_STATE_READY;
}

/* The listening loop of register/listen and peers --watch: take pushes, answer calls, free receive space. */
static int chat_loop(struct chat *c)
{
    struct channel *ch = &c->s->ch;
    struct vmgmt_dev *dev = &c->s->dev;
    struct inflight_answer a;
    for (;;) {
        if (signals_stop_requested())
            return REPORT_EXIT_OK;
        while (ring_can_consume(&ch->c2g)) {
            struct vmgmt_msg msg;
            enum channel_io io = channel_recv(ch, &msg, a.payload, sizeof(a.payload), clock_now_ns());
            if (io != CHANNEL_IO_OK)
                return channel_report_io(ch, io, 0, "receiving chat messages");
            if (msg.type & VMGMT_MSG_RESPONSE_BIT)
                return report_error(REPORT_EXIT_PROTOCOL, "protocol violation by the core on channel %u: an answer (type 0x%04x, request_id %u) to no request", ch->index,
                                    msg.type, msg.request_id);
            chat_on_push(c, &msg, a.payload);
        }
        if (fflush(stdout) != 0)
            return report_error(REPORT_EXIT_SYSTEM, "writing to stdout failed");
        while (c->call_count > 0) {
            int rc = chat_answer_call(c);
            if (rc)
                return rc;
        }
        /* The core hears nothing when we only consume: tell it we made room when it waits for some. The
         * wait below checks the flag too, in case the core raised it just after we looked. */
        if (chat_core_waits(c)) {
            c->took = false;
            int rc = chat_call_core(c, VMGMT_MSG_CHAT_RX_FREED, NULL, 0, &a, "CHAT_RX_FREED");
            if (rc)
                return rc;
            continue;
        }
        if (__atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE) != VMGMT_CHANNEL_STATE_READY) {
            int32_t last = __atomic_load_n(&ch->ctl->last_status, __ATOMIC_ACQUIRE);
            return report_error(REPORT_EXIT_PROTOCOL, "chat: the core stopped serving channel %u (state %s, last status %d: %s); register again", ch->index,
                                channel_state_name(__atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE)), last, vmgmt_status_text(last));
        }
        if (ring_can_consume(&ch->c2g))
            continue;
        /* Polling: every look costs a wake-up, so the interval stretches once no message came for a while. */
        uint64_t now = clock_now_ns();
        bool warm = now - c->last_active_ns < CHAT_WARM_NS;
        dev->backoff_max_ns = warm ? CHAT_WARM_BACKOFF_NS : CHAT_IDLE_BACKOFF_NS;
        enum wait_result r = wait_until(dev, chat_wakeable, c, &ch->c2g.ring->need_wakeup, warm ? c->last_active_ns + CHAT_WARM_NS : now + 1000000000ull);
        dev->backoff_max_ns = DEV_DEFAULT_BACKOFF_MAX_NS;
        if (r == WAIT_INTERRUPTED)
            return REPORT_EXIT_OK;
        if (r == WAIT_ERROR)
            return report_error(REPORT_EXIT_SYSTEM, "chat: waiting for the MSI-X eventfd failed: %s", strerror(errno));
    }
}

static int chat_listen(struct chat *c)
{
    for (unsigned i = 0; i < c->name_count; i++) {
        int rc = chat_name_request(c, VMGMT_MSG_CHAT_REGISTER, c->names[i], "register");
        if (rc)
            return rc;
    }
    fprintf(stderr, "chat: registered");
    for (unsigned i = 0; i < c->name_count; i++)
        fprintf(stderr, " %s", c->names[i]);
    fprintf(stderr, " on channel %u (pid %d, wait=%s)%s\n", c->s->ch.index, (int)getpid(), dev_wait_name(c->s->dev.wait),
            c->exec ? "; answering calls with --exec" : c->echo ? "; answering calls with their own data (--echo)" : "");
    int rc = chat_loop(c);
    if (c->quiet)
        fprintf(stderr, "chat: took %" PRIu64 " messages\n", c->received);
    /* Leaving: the channel reset on release tells the core the names are gone; say so first in words. */
    for (unsigned i = 0; i < c->name_count && !rc && !c->table.broken; i++) {
        c->s->dev.ignore_stop = true;
        chat_name_request(c, VMGMT_MSG_CHAT_UNREGISTER, c->names[i], "unregister");
    }
    return rc;
}

static int chat_peers(struct chat *c)
{
    uint32_t cookie = 0, total = 0;
    uint32_t buf = chat_buffer(c, 0);
    if (c->json)
        fputs("[", stdout);
    do {
        struct vmgmt_chat_list req = { .buf_offset = buf, .buf_len = CHAT_BUF_BYTES, .cookie = cookie };
        struct inflight_answer a;
        int rc = chat_call_core(c, VMGMT_MSG_CHAT_PEERS, &req, sizeof(req), &a, "CHAT_PEERS");
        if (rc)
            return rc;
        if (a.status != VMGMT_ST_OK)
            return chat_refused("peers", "", a.status);
        struct vmgmt_chat_list_result r;
        if (a.length != sizeof(r))
            return report_error(REPORT_EXIT_PROTOCOL, "CHAT_PEERS answer of %u bytes, expected %zu", a.length, sizeof(r));
        memcpy(&r, a.payload, sizeof(r));
        if (r.bytes > CHAT_BUF_BYTES)
            return report_error(REPORT_EXIT_PROTOCOL, "CHAT_PEERS says %u bytes, more than the %u-byte buffer", r.bytes, CHAT_BUF_BYTES);
        memcpy(c->buf, slice_at(&c->slice, buf), r.bytes);
        uint32_t at = 0;
        for (uint32_t i = 0; i < r.count; i++) {
            struct vmgmt_chat_peer e;
            if (at + sizeof(e) > r.bytes)
                return report_error(REPORT_EXIT_PROTOCOL, "CHAT_PEERS entry %u runs past the %u bytes", i, r.bytes);
            memcpy(&e, c->buf + at, sizeof(e));
            uint32_t size = ((uint32_t)sizeof(e) + e.vm_len + e.name_len + 3u) & ~3u;
            if (at + size > r.bytes)
                return report_error(REPORT_EXIT_PROTOCOL, "CHAT_PEERS entry %u runs past the %u bytes", i, r.bytes);
            char vm[256], name[256];
            chat_copy_str(vm, c->buf + at + sizeof(e), e.vm_len);
            chat_copy_str(name, c->buf + at + sizeof(e) + e.vm_len, e.name_len);
            if (c->json) {
                fputs(total ? ",{\"vm\":" : "{\"vm\":", stdout);
                if (vm[0])
                    chat_json_string(stdout, (const uint8_t *)vm, strlen(vm));
                else
                    fputs("null", stdout);
                fputs(",\"name\":", stdout);
                chat_json_string(stdout, (const uint8_t *)name, strlen(name));
                fprintf(stdout, ",\"host\":%s}", (e.flags & VMGMT_CHAT_PEER_HOST) ? "true" : "false");
            } else {
                chat_print_party(stdout, vm, name);
                fputc('\n', stdout);
            }
            total++;
            at += size;
        }
        cookie = r.next_cookie;
    } while (cookie != 0);
    if (c->json)
        fputs("]\n", stdout);
    fflush(stdout);
    if (!c->watch)
        return REPORT_EXIT_OK;
    struct vmgmt_chat_watch w = { .on = 1 };
    struct inflight_answer a;
    int rc = chat_call_core(c, VMGMT_MSG_CHAT_WATCH, &w, sizeof(w), &a, "CHAT_WATCH");
    if (rc)
        return rc;
    if (a.status != VMGMT_ST_OK)
        return chat_refused("watch", "", a.status);
    return chat_loop(c);
}

static int chat_body(struct session *s, void *ctx)
{
    struct chat *c = ctx;
    int rc = chat_start(c, s);
    if (rc)
        return rc;
    switch (c->command) {
    case CHAT_LISTEN: rc = chat_listen(c); break;
    case CHAT_PEERS: rc = chat_peers(c); break;
    case CHAT_SEND: rc = chat_send(c); break;
    case CHAT_CALL: rc = chat_call(c); break;
    }
    /* Reset on the way out: the core drops our names (presence: process gone) at once. */
    if (!c->table.broken) {
        s->dev.ignore_stop = true;
        channel_reset(&s->ch, 2000);
    }
    return rc;
}

int chat_main(int argc, char **argv)
{
    struct chat *c = calloc(1, sizeof(*c));
    if (!c)
        return report_error(REPORT_EXIT_SYSTEM, "chat: out of memory");
    int rc = chat_parse(argc, argv, c);
    if (!rc) {
        signal(SIGPIPE, SIG_IGN);
        rc = session_run(&c->common, chat_body, c);
    }
    for (unsigned i = 0; i < CHAT_CALLS_QUEUED; i++)
        free(c->calls[i].data);
    free(c);
    return rc;
}
