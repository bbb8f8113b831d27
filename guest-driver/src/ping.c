#include "ping.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "report.h"

struct ping_payload {
    uint64_t sequence;
    uint64_t sent_ns;
};

static int ping_compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void ping_stats_compute(uint64_t *rtt_ns, uint32_t n, struct ping_stats *out)
{
    qsort(rtt_ns, n, sizeof(rtt_ns[0]), ping_compare_u64);
    out->min_ns = rtt_ns[0];
    out->max_ns = rtt_ns[n - 1];
    out->median_ns = n % 2 ? rtt_ns[n / 2] : (rtt_ns[n / 2 - 1] + rtt_ns[n / 2]) / 2;
    uint32_t rank = (uint32_t)(((uint64_t)n * 99 + 99) / 100); /* nearest rank: ceil(0.99 n) */
    out->p99_ns = rtt_ns[rank - 1];
}

static int ping_io_error(const struct channel *ch, enum channel_io io, uint32_t seq, const struct ping_options *opt, const char *phase)
{
    switch (io) {
    case CHANNEL_IO_TIMEOUT:
        return report_error(REPORT_EXIT_TIMEOUT,
                            "timed out after %u ms waiting for the management core to %s ping %u on channel %u (is the vmgmt daemon running?)",
                            opt->timeout_ms, phase, seq, ch->index);
    case CHANNEL_IO_INTERRUPTED:
        return report_error(REPORT_EXIT_SYSTEM, "interrupted during ping %u; channel %u released", seq, ch->index);
    case CHANNEL_IO_NEEDS_RESET: {
        char during[32];
        snprintf(during, sizeof(during), "ping %u", seq);
        return channel_report_io(ch, io, opt->timeout_ms, during);
    }
    case CHANNEL_IO_BAD_INDEX:
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u during ping %u: ring index out of range (g2c prod %u cons %u, c2g prod %u cons %u); restart the vmgmt daemon",
                            ch->index, seq, ch->g2c.local, __atomic_load_n(&ch->g2c.ring->cons, __ATOMIC_ACQUIRE),
                            __atomic_load_n(&ch->c2g.ring->prod, __ATOMIC_ACQUIRE), ch->c2g.local);
    case CHANNEL_IO_BAD_LENGTH:
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u during ping %u: message length larger than a %u-byte slot allows",
                            ch->index, seq, ch->c2g.slot_size);
    default:
        return report_error(REPORT_EXIT_SYSTEM, "waiting for the MSI-X eventfd failed during ping %u: %s (retry with --wait poll)", seq,
                            strerror(errno));
    }
}

static int ping_check_response(const struct channel *ch, uint32_t seq, const struct vmgmt_msg *req, const struct ping_payload *sent,
                               const struct vmgmt_msg *resp, const uint8_t *payload)
{
    const uint16_t want_type = VMGMT_MSG_PING | VMGMT_MSG_RESPONSE_BIT;
    if (resp->type != want_type || resp->request_id != req->request_id)
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u: answer to ping %u has type 0x%04x and request_id %u, expected 0x%04x and %u",
                            ch->index, seq, resp->type, resp->request_id, want_type, req->request_id);
    if (resp->status != VMGMT_ST_OK)
        return report_error(REPORT_EXIT_PROTOCOL, "the management core answered ping %u on channel %u with status %d: %s", seq, ch->index,
                            resp->status, vmgmt_status_text(resp->status));
    if (resp->flags != 0)
        return report_error(REPORT_EXIT_PROTOCOL, "protocol violation by the core on channel %u: answer to ping %u has reserved flags 0x%04x, expected 0",
                            ch->index, seq, resp->flags);
    if (resp->length != sizeof(*sent) || memcmp(payload, sent, sizeof(*sent)) != 0)
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u: answer to ping %u carries %u payload bytes that differ from the %zu sent",
                            ch->index, seq, resp->length, sizeof(*sent));
    return REPORT_EXIT_OK;
}

int ping_run(struct channel *ch, const struct ping_options *opt)
{
    struct vmgmt_dev *dev = ch->dev;
    uint32_t cap = ring_max_payload(&ch->c2g);
    uint64_t *rtt_ns = calloc(opt->count, sizeof(*rtt_ns));
    uint8_t *payload = malloc(cap);
    int rc = REPORT_EXIT_OK;
    if (!rtt_ns || !payload) {
        rc = report_error(REPORT_EXIT_SYSTEM, "out of memory for %u ping results (use a smaller -n)", opt->count);
        goto free_buffers;
    }
    for (uint32_t seq = 1; seq <= opt->count; seq++) {
        uint64_t start = clock_now_ns();
        uint64_t deadline = start + (uint64_t)opt->timeout_ms * 1000000ull;
        struct ping_payload sent = { .sequence = seq, .sent_ns = start };
        struct vmgmt_msg req = { .type = VMGMT_MSG_PING, .length = sizeof(sent), .request_id = seq };
        enum channel_io io = channel_send(ch, &req, &sent, deadline);
        if (io != CHANNEL_IO_OK) {
            rc = ping_io_error(ch, io, seq, opt, "take");
            goto free_buffers;
        }
        struct vmgmt_msg resp;
        io = channel_recv(ch, &resp, payload, cap, deadline);
        uint64_t end = clock_now_ns();
        if (io != CHANNEL_IO_OK) {
            rc = ping_io_error(ch, io, seq, opt, "answer");
            goto free_buffers;
        }
        rc = ping_check_response(ch, seq, &req, &sent, &resp, payload);
        if (rc)
            goto free_buffers;
        rtt_ns[seq - 1] = end - start;
        report_verbose(dev->verbose && opt->count <= 20, "ping %u: %.1f us", seq, (double)(end - start) / 1000.0);
    }
    struct ping_stats st;
    ping_stats_compute(rtt_ns, opt->count, &st);
    printf("ping: n=%u min_us=%.1f median_us=%.1f p99_us=%.1f max_us=%.1f wait=%s\n", opt->count, (double)st.min_ns / 1000.0,
           (double)st.median_ns / 1000.0, (double)st.p99_ns / 1000.0, (double)st.max_ns / 1000.0,
           dev_wait_name(dev->wait));
free_buffers:
    free(payload);
    free(rtt_ns);
    return rc;
}
