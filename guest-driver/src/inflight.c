#include "inflight.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "report.h"

void inflight_init(struct inflight *t, struct channel *ch, uint32_t timeout_ms)
{
    memset(t, 0, sizeof(*t));
    t->ch = ch;
    t->limit = ch->c2g.slot_count < INFLIGHT_MAX ? ch->c2g.slot_count : INFLIGHT_MAX;
    t->next_id = 1;
    t->timeout_ms = timeout_ms;
}

const char *inflight_type_name(uint16_t type)
{
    return vmgmt_msg_type_name(type);
}

int inflight_send(struct inflight *t, uint16_t type, const void *payload, uint32_t length, uint32_t tag, const char *during,
                  uint32_t *request_id)
{
    struct inflight_entry *e = NULL;
    for (uint32_t i = 0; i < INFLIGHT_MAX && !e; i++)
        if (!t->entry[i].used)
            e = &t->entry[i];
    if (!e || inflight_full(t))
        return report_error(REPORT_EXIT_SYSTEM, "internal error: %u requests already in flight on channel %u during %s", t->count, t->ch->index, during);
    uint32_t id = t->next_id++;
    if (t->next_id == 0)
        t->next_id = 1;
    struct vmgmt_msg msg = { .type = type, .length = length, .request_id = id };
    enum channel_io io = channel_send(t->ch, &msg, payload, clock_now_ns() + (uint64_t)t->timeout_ms * 1000000ull);
    if (io != CHANNEL_IO_OK) {
        t->broken = io != CHANNEL_IO_INTERRUPTED;
        return channel_report_io(t->ch, io, t->timeout_ms, during);
    }
    *e = (struct inflight_entry){ .used = true, .type = type, .request_id = id, .tag = tag };
    t->count++;
    if (request_id)
        *request_id = id;
    return REPORT_EXIT_OK;
}

enum inflight_take {
    INFLIGHT_TAKEN,
    INFLIGHT_IO,          /* channel_recv failed */
    INFLIGHT_UNMATCHED,   /* no outstanding request has this id */
    INFLIGHT_WRONG_TYPE,  /* the id matches, the type does not */
    INFLIGHT_FLAGS,       /* reserved flags set */
};

static enum inflight_take inflight_take(struct inflight *t, struct inflight_answer *a, uint64_t deadline_ns, enum channel_io *io,
                                        struct vmgmt_msg *msg)
{
    for (;;) {
        *io = channel_recv(t->ch, msg, a->payload, sizeof(a->payload), deadline_ns);
        if (*io != CHANNEL_IO_OK)
            return INFLIGHT_IO;
        if ((msg->type & VMGMT_MSG_RESPONSE_BIT) || !t->on_request)
            break;
        t->on_request(t->on_request_arg, msg, a->payload);
    }
    struct inflight_entry *e = NULL;
    for (uint32_t i = 0; i < INFLIGHT_MAX && !e; i++)
        if (t->entry[i].used && t->entry[i].request_id == msg->request_id)
            e = &t->entry[i];
    if (!e)
        return INFLIGHT_UNMATCHED;
    if (msg->type != (uint16_t)(e->type | VMGMT_MSG_RESPONSE_BIT))
        return INFLIGHT_WRONG_TYPE;
    if (msg->flags != 0)
        return INFLIGHT_FLAGS;
    a->type = e->type;
    a->status = msg->status;
    a->request_id = msg->request_id;
    a->tag = e->tag;
    a->length = msg->length;
    e->used = false;
    t->count--;
    return INFLIGHT_TAKEN;
}

int inflight_next(struct inflight *t, struct inflight_answer *a, const char *during)
{
    if (t->count == 0)
        return report_error(REPORT_EXIT_SYSTEM, "internal error: waiting for an answer with no request in flight on channel %u during %s", t->ch->index,
                            during);
    enum channel_io io;
    struct vmgmt_msg msg;
    enum inflight_take r = inflight_take(t, a, clock_now_ns() + (uint64_t)t->timeout_ms * 1000000ull, &io, &msg);
    if (r == INFLIGHT_TAKEN)
        return REPORT_EXIT_OK;
    if (r == INFLIGHT_IO) {
        t->broken = io != CHANNEL_IO_INTERRUPTED;
        return channel_report_io(t->ch, io, t->timeout_ms, during);
    }
    t->broken = true;
    const char *why = r == INFLIGHT_UNMATCHED ? "matches no outstanding request"
                      : r == INFLIGHT_WRONG_TYPE ? "has a type that differs from its request's"
                                                 : "has reserved flags set";
    return report_error(REPORT_EXIT_PROTOCOL,
                        "protocol violation by the core on channel %u during %s: an answer (type 0x%04x, request_id %u, flags 0x%04x, status %d) %s; restart the vmgmt daemon",
                        t->ch->index, during, msg.type, msg.request_id, msg.flags, msg.status, why);
}

int inflight_call(struct inflight *t, uint16_t type, const void *payload, uint32_t length, struct inflight_answer *a, const char *during)
{
    uint32_t id;
    int rc = inflight_send(t, type, payload, length, UINT32_MAX, during, &id);
    if (rc)
        return rc;
    for (;;) {
        rc = inflight_next(t, a, during);
        if (rc || a->request_id == id)
            return rc;
        report_verbose(t->ch->dev->verbose, "channel %u: dropped the answer to an earlier %s (status %d) during %s", t->ch->index,
                       inflight_type_name(a->type), a->status, during);
    }
}

bool inflight_drain(struct inflight *t, uint32_t timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    struct inflight_answer scratch;
    while (t->count > 0) {
        enum channel_io io;
        struct vmgmt_msg msg;
        if (inflight_take(t, &scratch, deadline, &io, &msg) != INFLIGHT_TAKEN) {
            t->broken = true;
            return false;
        }
    }
    return true;
}
