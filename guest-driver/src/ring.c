#include "ring.h"

#include <string.h>

void ring_attach_producer(struct ring_view *rv)
{
    rv->local = __atomic_load_n(&rv->ring->prod, __ATOMIC_ACQUIRE);
}

void ring_attach_consumer(struct ring_view *rv)
{
    rv->local = __atomic_load_n(&rv->ring->cons, __ATOMIC_ACQUIRE);
}

static uint8_t *ring_slot(const struct ring_view *rv, uint32_t index)
{
    return rv->slots + (size_t)(index & (rv->slot_count - 1)) * rv->slot_size;
}

int ring_can_produce(const struct ring_view *rv)
{
    uint32_t cons = __atomic_load_n(&rv->ring->cons, __ATOMIC_ACQUIRE);
    return rv->local - cons != rv->slot_count;
}

enum ring_result ring_produce(struct ring_view *rv, const struct vmgmt_msg *msg, const void *payload)
{
    uint32_t cons = __atomic_load_n(&rv->ring->cons, __ATOMIC_ACQUIRE);
    uint32_t used = rv->local - cons;
    if (used > rv->slot_count)
        return RING_BAD_INDEX;
    if (used == rv->slot_count)
        return RING_FULL;
    if (msg->length > ring_max_payload(rv))
        return RING_BAD_LENGTH;
    uint8_t *slot = ring_slot(rv, rv->local);
    memcpy(slot, msg, sizeof(*msg));
    memcpy(slot + sizeof(*msg), payload, msg->length);
    rv->local++;
    __atomic_store_n(&rv->ring->prod, rv->local, __ATOMIC_RELEASE);
    return RING_OK;
}

enum ring_result ring_produce_raw(struct ring_view *rv, const struct vmgmt_msg *msg, const void *payload, uint32_t payload_bytes)
{
    uint32_t used = rv->local - __atomic_load_n(&rv->ring->cons, __ATOMIC_ACQUIRE);
    if (used > rv->slot_count)
        return RING_BAD_INDEX;
    if (used == rv->slot_count)
        return RING_FULL;
    uint8_t *slot = ring_slot(rv, rv->local);
    memcpy(slot, msg, sizeof(*msg));
    memcpy(slot + sizeof(*msg), payload, payload_bytes < ring_max_payload(rv) ? payload_bytes : ring_max_payload(rv));
    rv->local++;
    __atomic_store_n(&rv->ring->prod, rv->local, __ATOMIC_RELEASE);
    return RING_OK;
}

void ring_poke_prod(struct ring_view *rv, uint32_t prod)
{
    rv->local = prod;
    __atomic_store_n(&rv->ring->prod, prod, __ATOMIC_RELEASE);
}

int ring_can_consume(const struct ring_view *rv)
{
    return __atomic_load_n(&rv->ring->prod, __ATOMIC_ACQUIRE) != rv->local;
}

enum ring_result ring_consume(struct ring_view *rv, struct vmgmt_msg *msg, void *payload, uint32_t payload_cap)
{
    uint32_t prod = __atomic_load_n(&rv->ring->prod, __ATOMIC_ACQUIRE);
    if (prod == rv->local)
        return RING_EMPTY;
    if (prod - rv->local > rv->slot_count)
        return RING_BAD_INDEX;
    const uint8_t *slot = ring_slot(rv, rv->local);
    memcpy(msg, slot, sizeof(*msg));
    uint32_t max = ring_max_payload(rv) < payload_cap ? ring_max_payload(rv) : payload_cap;
    /* Only the copied length is used from here on: the producer cannot change what we validate. */
    memcpy(payload, slot + sizeof(*msg), msg->length < max ? msg->length : max);
    rv->local++;
    __atomic_store_n(&rv->ring->cons, rv->local, __ATOMIC_RELEASE);
    if (msg->length > max)
        return RING_BAD_LENGTH;
    return RING_OK;
}
