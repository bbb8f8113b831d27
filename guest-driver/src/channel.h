/* channel: claim a channel (compare-and-swap of owner from 0, or from a pid that no longer exists), reset it
 * through the core, send and receive messages on its two rings, release it. */
#ifndef VG_CHANNEL_H
#define VG_CHANNEL_H
#include <stdbool.h>
#include <stdint.h>

#include "dev.h"
#include "ring.h"

struct channel {
    struct vmgmt_dev *dev;
    uint32_t index;
    uint32_t token;               /* our pid, written into owner */
    uint32_t generation;          /* after our claim */
    struct vmgmt_channel *ctl;    /* control block in BAR2 */
    struct ring_view g2c;         /* we produce, the core consumes */
    struct ring_view c2g;         /* the core produces, we consume */
    bool claimed;
};

enum channel_io {
    CHANNEL_IO_OK,
    CHANNEL_IO_TIMEOUT,
    CHANNEL_IO_INTERRUPTED,
    CHANNEL_IO_BAD_INDEX,   /* the core's ring index is out of range */
    CHANNEL_IO_BAD_LENGTH,  /* the core's message is longer than a slot */
    CHANNEL_IO_ERROR,       /* a system call failed; errno says which */
    CHANNEL_IO_NEEDS_RESET, /* the core put the channel in NEEDS_RESET; last_status says why */
};

/* Claims the first free channel, resets it through the core and attaches to its rings. Returns a report_exit code. */
int channel_claim(struct vmgmt_dev *dev, struct channel *ch, uint32_t timeout_ms);

/* Claims channel `index` only (free, or owned by a pid that no longer exists) and resets it. Returns a
 * report_exit code (REPORT_EXIT_NO_CHANNEL when a live process owns it). */
int channel_claim_at(struct vmgmt_dev *dev, struct channel *ch, uint32_t index, uint32_t timeout_ms);

/* Resets our claimed channel through the core (new generation, empty rings, mode NONE; the core drops
 * every request in flight) and re-attaches to its rings. Returns a report_exit code. */
int channel_reset(struct channel *ch, uint32_t timeout_ms);

/* Gives the channel back (owner pid -> 0). Safe to call twice. */
void channel_release(struct channel *ch);

/* Waits for a free g2c slot, produces msg + payload, rings the core if it asked for a wake-up. Stops waiting
 * when the core puts the channel in NEEDS_RESET. */
enum channel_io channel_send(struct channel *ch, const struct vmgmt_msg *msg, const void *payload, uint64_t deadline_ns);

/* Waits for the next c2g message and copies it out. payload_cap must be at least ring_max_payload(). Messages
 * already in the ring are delivered first; then CHANNEL_IO_NEEDS_RESET if the core gave up on the channel. */
enum channel_io channel_recv(struct channel *ch, struct vmgmt_msg *msg, void *payload, uint32_t payload_cap, uint64_t deadline_ns);

/* Prints why a send or receive failed, `during` naming the request ("FILE_READ of a.bin"), and returns the
 * exit code: TIMEOUT 5, INTERRUPTED 1, NEEDS_RESET and ring violations 6, ERROR 1. */
int channel_report_io(const struct channel *ch, enum channel_io io, uint32_t timeout_ms, const char *during);

/* "IDLE", "READY", "NEEDS_RESET" or "UNKNOWN". */
const char *channel_state_name(uint32_t state);

/* "no", "yes" or "gone" (pid no longer exists in this guest) for a channel owner. */
const char *channel_owner_liveness(uint32_t owner);

#endif
