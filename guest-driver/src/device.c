#include "device.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "report.h"
#include "wait.h"

uint32_t device_reg_read(const struct vmgmt_dev *dev, uint32_t offset)
{
    return *(const volatile uint32_t *)(dev->bar0 + offset);
}

void device_doorbell(struct vmgmt_dev *dev, uint32_t peer, uint32_t vector)
{
    *(volatile uint32_t *)(dev->bar0 + VMGMT_BAR0_DOORBELL) = (peer << 16) | (vector & 0xffffu);
}

void device_notify_core(struct vmgmt_dev *dev, uint32_t vector)
{
    device_doorbell(dev, dev->geom.core_peer_id, vector);
}

const char *device_status_words(uint32_t status, char *buf, size_t cap)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        { VMGMT_STATUS_BIT_ACKNOWLEDGE, "ACKNOWLEDGE" }, { VMGMT_STATUS_BIT_DRIVER, "DRIVER" },
        { VMGMT_STATUS_BIT_FEATURES_OK, "FEATURES_OK" }, { VMGMT_STATUS_BIT_DRIVER_OK, "DRIVER_OK" },
        { VMGMT_STATUS_BIT_NEEDS_RESET, "NEEDS_RESET" }, { VMGMT_STATUS_BIT_FAILED, "FAILED" },
    };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(status & names[i].bit))
            continue;
        used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%s", used ? "|" : "", names[i].name);
        status &= ~names[i].bit;
    }
    if (status)
        used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s0x%x", used ? "|" : "", status);
    if (!used)
        snprintf(buf, cap, "0");
    return buf;
}

static int device_invalid(const struct vmgmt_dev *dev, const char *what)
{
    return report_error(REPORT_EXIT_DEVICE_INVALID, "device %s is invalid: %s", dev->bdf, what);
}

int device_validate(struct vmgmt_dev *dev)
{
    char why[320];
    const struct vmgmt_header *h = &dev->geom;
    if (dev->bar2_size < sizeof(struct vmgmt_header)) {
        snprintf(why, sizeof(why), "BAR2 is %" PRIu64 " bytes, smaller than the %zu-byte header (start the VM with the region the vmgmt core serves)",
                 dev->bar2_size, sizeof(struct vmgmt_header));
        return device_invalid(dev, why);
    }
    memcpy(&dev->geom, dev->bar2, sizeof(dev->geom));

    if (h->magic != VMGMT_MAGIC)
        snprintf(why, sizeof(why), "header magic 0x%08x, expected 0x%08x: the region was not set up by the vmgmt core (is the vmgmt daemon serving this VM's ivshmem device?)",
                 h->magic, VMGMT_MAGIC);
    else if (h->version_major != VMGMT_VERSION_MAJOR)
        snprintf(why, sizeof(why), "protocol version %u.%u, this driver speaks %u.x: install the vmgmt-guest that matches the host's vmgmt",
                 h->version_major, h->version_minor, VMGMT_VERSION_MAJOR);
    else if (h->header_size < sizeof(struct vmgmt_header))
        snprintf(why, sizeof(why), "header_size %u is smaller than the %zu bytes this driver reads: the core is broken; restart the vmgmt daemon",
                 h->header_size, sizeof(struct vmgmt_header));
    else if (h->region_size != dev->bar2_size)
        snprintf(why, sizeof(why), "header region_size %" PRIu64 " differs from the BAR2 size %" PRIu64 ": the header was written for another region; restart the VM",
                 h->region_size, dev->bar2_size);
    else if (h->ring_slots < 2 || h->ring_slots > VMGMT_LIMIT_MAX_RING_SLOTS || (h->ring_slots & (h->ring_slots - 1)))
        snprintf(why, sizeof(why), "ring_slots %u is not a power of two between 2 and %u", h->ring_slots, VMGMT_LIMIT_MAX_RING_SLOTS);
    else if (h->slot_size < VMGMT_LIMIT_MIN_SLOT_BYTES || h->slot_size > VMGMT_LIMIT_MAX_SLOT_BYTES || h->slot_size % 64)
        snprintf(why, sizeof(why), "slot_size %u is not a multiple of 64 between %u and %u", h->slot_size, VMGMT_LIMIT_MIN_SLOT_BYTES,
                 VMGMT_LIMIT_MAX_SLOT_BYTES);
    else if (h->channel_count > VMGMT_LIMIT_MAX_CHANNELS)
        snprintf(why, sizeof(why), "channel_count %u exceeds the limit of %u", h->channel_count, VMGMT_LIMIT_MAX_CHANNELS);
    else if (h->vectors < 1 || h->vectors > VMGMT_LIMIT_MAX_VECTORS)
        snprintf(why, sizeof(why), "vectors %u is not between 1 and %u", h->vectors, VMGMT_LIMIT_MAX_VECTORS);
    else if (h->core_peer_id > 0xffff)
        snprintf(why, sizeof(why), "core_peer_id %u does not fit the 16-bit doorbell peer field", h->core_peer_id);
    else {
        /* All operands are at most 32 bits wide, so these 64-bit sums and products cannot overflow. */
        uint64_t need_stride = (uint64_t)VMGMT_CHANNEL_LAYOUT_SLOTS_G2C + 2ull * h->ring_slots * h->slot_size;
        uint64_t channels_end = (uint64_t)h->channels_offset + (uint64_t)h->channel_count * h->channel_stride;
        why[0] = '\0';
        if (h->channels_offset < h->header_size || h->channels_offset % VMGMT_CACHE_LINE_BYTES)
            snprintf(why, sizeof(why), "channels_offset %u overlaps the %u-byte header or is not 64-byte aligned", h->channels_offset, h->header_size);
        else if (h->channel_stride < need_stride || h->channel_stride % VMGMT_CACHE_LINE_BYTES)
            snprintf(why, sizeof(why), "channel_stride %u is not a multiple of 64 of at least %" PRIu64 " bytes (%u slots of %u bytes in two rings)",
                     h->channel_stride, need_stride, h->ring_slots, h->slot_size);
        else if (channels_end > h->region_size)
            snprintf(why, sizeof(why), "%u channels of %u bytes at offset %u end at %" PRIu64 ", past the %" PRIu64 "-byte region", h->channel_count,
                     h->channel_stride, h->channels_offset, channels_end, h->region_size);
        else if (h->data_offset > h->region_size || h->data_size > h->region_size - h->data_offset)
            snprintf(why, sizeof(why), "data window of %" PRIu64 " bytes at offset %" PRIu64 " does not fit the %" PRIu64 "-byte region", h->data_size,
                     h->data_offset, h->region_size);
        else if (h->data_size && h->data_offset < channels_end)
            snprintf(why, sizeof(why), "data window at offset %" PRIu64 " overlaps the channels, which end at %" PRIu64, h->data_offset, channels_end);
        else if (h->data_slice_size < DEVICE_MIN_DATA_SLICE_BYTES)
            snprintf(why, sizeof(why), "data_slice_size %u is smaller than %u bytes (a path needs up to %u): the core is older or broken; update the host's vmgmt",
                     h->data_slice_size, DEVICE_MIN_DATA_SLICE_BYTES, VMGMT_MAX_PATH_BYTES);
        else if ((uint64_t)h->channel_count * h->data_slice_size > h->data_size)
            snprintf(why, sizeof(why), "%u data slices of %u bytes need %" PRIu64 " bytes, more than the %" PRIu64 "-byte data window at offset %" PRIu64,
                     h->channel_count, h->data_slice_size, (uint64_t)h->channel_count * h->data_slice_size, h->data_size, h->data_offset);
        if (!why[0]) {
            dev->hdr = (struct vmgmt_header *)dev->bar2;
            dev->peer_id = device_reg_read(dev, VMGMT_BAR0_IV_POSITION);
            return REPORT_EXIT_OK;
        }
    }
    return device_invalid(dev, why);
}

struct device_reset_wait {
    const uint32_t *reset_done;
    uint32_t want;
    bool exact;     /* reset_done was already at or past `want` when we asked (garbage): only equality counts */
};

/* Increments reset_request and notes what completion will look like. */
static void device_reset_request(struct vmgmt_header *h, struct device_reset_wait *w)
{
    w->reset_done = &h->reset_done;
    uint32_t done_before = __atomic_load_n(&h->reset_done, __ATOMIC_ACQUIRE);
    w->want = __atomic_add_fetch(&h->reset_request, 1u, __ATOMIC_SEQ_CST);
    w->exact = (int32_t)(done_before - w->want) >= 0;
}

/* Done once reset_done has reached our request or passed it (serial-number arithmetic): when two processes
 * request a reset at once, the core answers both with one reset and reset_done equals only the later one. */
static bool device_reset_complete(void *arg)
{
    const struct device_reset_wait *w = arg;
    uint32_t done = __atomic_load_n(w->reset_done, __ATOMIC_ACQUIRE);
    return w->exact ? done == w->want : (int32_t)(done - w->want) >= 0;
}

int device_reset_unchecked(struct vmgmt_dev *dev, uint32_t timeout_ms)
{
    if (dev->bar2_size < sizeof(struct vmgmt_header))
        return report_error(REPORT_EXIT_DEVICE_INVALID, "device %s: BAR2 is %" PRIu64 " bytes, smaller than the %zu-byte header: nothing to reset",
                            dev->bdf, dev->bar2_size, sizeof(struct vmgmt_header));
    struct vmgmt_header *h = (struct vmgmt_header *)dev->bar2;
    struct device_reset_wait w;
    device_reset_request(h, &w);
    /* The header's vector count and core_peer_id may be garbage: ring the core (peer 0) on CONFIG, and on
     * RING, which every device has (the core treats every doorbell alike). */
    device_doorbell(dev, 0, VMGMT_VECTOR_CONFIG);
    device_doorbell(dev, 0, VMGMT_VECTOR_RING);
    enum wait_result r = wait_until(dev, device_reset_complete, &w, NULL, clock_now_ns() + (uint64_t)timeout_ms * 1000000ull);
    if (r == WAIT_INTERRUPTED)
        return REPORT_EXIT_SYSTEM;
    if (r != WAIT_READY)
        return report_error(REPORT_EXIT_TIMEOUT,
                            "timed out after %u ms waiting for the management core to reset device %s (reset_request %u, reset_done %u): the management core did not answer (is the vmgmt daemon running?)",
                            timeout_ms, dev->bdf, w.want, __atomic_load_n(&h->reset_done, __ATOMIC_ACQUIRE));
    report_verbose(dev->verbose, "device %s: reset by the core (reset_request %u)", dev->bdf, w.want);
    return REPORT_EXIT_OK;
}

int device_init(struct vmgmt_dev *dev, uint32_t timeout_ms)
{
    struct vmgmt_header *h = dev->hdr;
    char words[128];
    uint32_t status = __atomic_load_n(&h->device_status, __ATOMIC_ACQUIRE);
    if ((status & VMGMT_STATUS_BIT_DRIVER_OK) && !(status & VMGMT_STATUS_BIT_NEEDS_RESET)) {
        dev->features = __atomic_load_n(&h->guest_features, __ATOMIC_ACQUIRE) & DEVICE_SUPPORTED_FEATURES;
        report_verbose(dev->verbose, "device status %s: already initialised, no device reset", device_status_words(status, words, sizeof(words)));
        return REPORT_EXIT_OK;
    }
    report_verbose(dev->verbose, "device status %s: resetting the device", device_status_words(status, words, sizeof(words)));
    struct device_reset_wait w;
    device_reset_request(h, &w);
    /* The core treats every vector alike; a one-vector device has only VECTOR_RING. */
    device_notify_core(dev, h->vectors > VMGMT_VECTOR_CONFIG ? VMGMT_VECTOR_CONFIG : VMGMT_VECTOR_RING);
    enum wait_result r = wait_until(dev, device_reset_complete, &w, NULL, clock_now_ns() + (uint64_t)timeout_ms * 1000000ull);
    if (r == WAIT_INTERRUPTED)
        return REPORT_EXIT_SYSTEM;
    if (r != WAIT_READY)
        return report_error(REPORT_EXIT_TIMEOUT,
                            "timed out after %u ms waiting for the management core to reset device %s (reset_request %u, reset_done %u): the management core did not answer (is the vmgmt daemon running?)",
                            timeout_ms, dev->bdf, w.want, __atomic_load_n(&h->reset_done, __ATOMIC_ACQUIRE));

    __atomic_store_n(&h->device_status, VMGMT_STATUS_BIT_ACKNOWLEDGE | VMGMT_STATUS_BIT_DRIVER, __ATOMIC_SEQ_CST);
    uint64_t offered = __atomic_load_n(&h->host_features, __ATOMIC_ACQUIRE);
    dev->features = offered & DEVICE_SUPPORTED_FEATURES;
    __atomic_store_n(&h->guest_features, dev->features, __ATOMIC_SEQ_CST);
    __atomic_fetch_or(&h->device_status, VMGMT_STATUS_BIT_FEATURES_OK, __ATOMIC_SEQ_CST);
    status = __atomic_load_n(&h->device_status, __ATOMIC_ACQUIRE);
    if (!(status & VMGMT_STATUS_BIT_FEATURES_OK) || (status & VMGMT_STATUS_BIT_NEEDS_RESET))
        return report_error(REPORT_EXIT_DEVICE_INVALID,
                            "device %s: the core did not accept features 0x%" PRIx64 " (status now %s); restart the vmgmt daemon and retry",
                            dev->bdf, dev->features, device_status_words(status, words, sizeof(words)));
    __atomic_fetch_or(&h->device_status, VMGMT_STATUS_BIT_DRIVER_OK, __ATOMIC_SEQ_CST);
    report_verbose(dev->verbose, "device reset done; features offered 0x%" PRIx64 ", accepted 0x%" PRIx64, offered, dev->features);
    return REPORT_EXIT_OK;
}
