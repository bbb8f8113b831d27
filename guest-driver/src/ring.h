/* ring: one single-producer single-consumer ring of a channel. Free-running u32 indices, slot = index &
 * (slots - 1). The producer writes the slot, then release-stores prod; the consumer acquire-loads prod,
 * copies the slot out, validates the copy, then release-stores cons. The peer's index is never trusted. */
#ifndef VG_RING_H
#define VG_RING_H
#include <stdint.h>

#include "vmgmt_layout.h"

struct ring_view {
    struct vmgmt_ring *ring;  /* indices in BAR2 */
    uint8_t *slots;           /* slot array in BAR2 */
    uint32_t slot_count;      /* power of two, validated */
    uint32_t slot_size;       /* bytes per slot, validated */
    uint32_t local;           /* our own index (prod for a ring we produce into, cons for one we consume) */
};

enum ring_result {
    RING_OK,
    RING_EMPTY,      /* consume: nothing to read */
    RING_FULL,       /* produce: no free slot */
    RING_BAD_INDEX,  /* the peer's index moved backwards or further than the ring size */
    RING_BAD_LENGTH, /* the message claims more payload than a slot holds */
};

/* Takes our index from shared memory (after a channel reset) so later calls need not trust it. */
void ring_attach_producer(struct ring_view *rv);
void ring_attach_consumer(struct ring_view *rv);

/* Largest payload a slot can carry. */
static inline uint32_t ring_max_payload(const struct ring_view *rv)
{
    return rv->slot_size - (uint32_t)sizeof(struct vmgmt_msg);
}

/* Produce: RING_FULL when prod - cons == slots. Writes msg (length = payload bytes) and payload, publishes prod. */
enum ring_result ring_produce(struct ring_view *rv, const struct vmgmt_msg *msg, const void *payload);

/* Produce for `debug raw`: writes msg exactly as given (a length larger than the slot included) and
 * payload_bytes of payload (clamped to the slot), then publishes prod. RING_FULL or RING_BAD_INDEX as above. */
enum ring_result ring_produce_raw(struct ring_view *rv, const struct vmgmt_msg *msg, const void *payload, uint32_t payload_bytes);

/* For `debug poke-prod`: publishes `prod` as the producer index without writing a slot. */
void ring_poke_prod(struct ring_view *rv, uint32_t prod);

/* True when a free slot exists (or the index is bad, so the caller stops waiting and sees the error). */
int ring_can_produce(const struct ring_view *rv);

/* True when the producer published a message we have not consumed (or the index is bad). */
int ring_can_consume(const struct ring_view *rv);

/* Consume: copies the next message header to *msg and its payload (up to payload_cap bytes, which must be
 * at least ring_max_payload) to payload, validates the copy, publishes cons. */
enum ring_result ring_consume(struct ring_view *rv, struct vmgmt_msg *msg, void *payload, uint32_t payload_cap);

#endif
