/* inflight: the table of requests a channel has outstanding at the core. The core answers asynchronously
 * and possibly out of order, so every answer is matched to its request by request_id (and must carry the
 * request's type with RESPONSE_BIT); an answer that matches nothing is a protocol violation. At most
 * `limit` requests are outstanding: MAX_IN_FLIGHT_PER_CHANNEL, and no more than the response ring holds. */
#ifndef VG_INFLIGHT_H
#define VG_INFLIGHT_H
#include <stdbool.h>
#include <stdint.h>

#include "channel.h"

#define INFLIGHT_MAX VMGMT_LIMIT_MAX_IN_FLIGHT_PER_CHANNEL

struct inflight_entry {
    bool used;
    uint16_t type;
    uint32_t request_id;
    uint32_t tag;          /* the caller's: which buffer, which step */
};

/* Called with a message the core put on c2g WITHOUT RESPONSE_BIT: a request the host started (agent mode).
 * The payload is only valid during the call. */
typedef void (*inflight_request_fn)(void *arg, const struct vmgmt_msg *msg, const uint8_t *payload);

struct inflight {
    struct channel *ch;
    struct inflight_entry entry[INFLIGHT_MAX];
    uint32_t count;        /* entries in use */
    uint32_t limit;
    uint32_t next_id;
    uint32_t timeout_ms;   /* per answer */
    bool broken;           /* a send or receive failed other than by SIGINT: the channel cannot carry a cleanup request */
    inflight_request_fn on_request; /* NULL: a host-started request is a protocol violation like any unmatched message */
    void *on_request_arg;
};

struct inflight_answer {
    uint16_t type;         /* of the request, without RESPONSE_BIT */
    int32_t status;
    uint32_t request_id;
    uint32_t tag;
    uint32_t length;       /* payload bytes, at most the slot's */
    uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
};

void inflight_init(struct inflight *t, struct channel *ch, uint32_t timeout_ms);

static inline bool inflight_full(const struct inflight *t)
{
    return t->count >= t->limit;
}

/* Sends a request and records it; *request_id (when not NULL) gets its id. `during` names it for messages
 * ("FILE_READ of a.bin"). The table must not be full. Returns a report_exit code. */
int inflight_send(struct inflight *t, uint16_t type, const void *payload, uint32_t length, uint32_t tag, const char *during,
                  uint32_t *request_id);

/* Waits (timeout_ms) for the answer to any outstanding request, checks it matches one, removes that entry.
 * Host-started requests that arrive meanwhile go to on_request (when set) and the wait goes on.
 * Returns a report_exit code; stops when the core puts the channel in NEEDS_RESET. */
int inflight_next(struct inflight *t, struct inflight_answer *a, const char *during);

/* Sends one request and waits for its answer. Answers to other outstanding requests that arrive meanwhile
 * are dropped (this is for requests made while nothing else matters, e.g. discarding after an error). */
int inflight_call(struct inflight *t, uint16_t type, const void *payload, uint32_t length, struct inflight_answer *a, const char *during);

/* Cleanup: waits up to timeout_ms for every outstanding answer, printing nothing. True when none is left. */
bool inflight_drain(struct inflight *t, uint32_t timeout_ms);

/* "FILE_READ" etc. for a request type. */
const char *inflight_type_name(uint16_t type);

#endif
