#include "channel.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "device.h"
#include "report.h"
#include "signals.h"
#include "wait.h"

/* An owner above INT32_MAX is no pid at all (garbage a rogue process left): kill() would read it as a
 * process group, and -1 as "every process", which always exists, so the channel could never be reclaimed. */
static bool channel_pid_gone(uint32_t pid)
{
    if (pid > (uint32_t)INT32_MAX)
        return true;
    return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

const char *channel_owner_liveness(uint32_t owner)
{
    if (!owner)
        return "free";
    return channel_pid_gone(owner) ? "gone" : "alive";
}

static void channel_attach(struct vmgmt_dev *dev, struct channel *ch, uint32_t index)
{
    const struct vmgmt_header *g = &dev->geom;
    ch->dev = dev;
    ch->index = index;
    ch->ctl = (struct vmgmt_channel *)(dev->bar2 + vmgmt_channel_offset(g, index));
    ch->g2c = (struct ring_view){ .ring = (struct vmgmt_ring *)(dev->bar2 + vmgmt_ring_g2c_offset(g, index)),
                                  .slots = dev->bar2 + vmgmt_slots_g2c_offset(g, index),
                                  .slot_count = g->ring_slots,
                                  .slot_size = g->slot_size };
    ch->c2g = (struct ring_view){ .ring = (struct vmgmt_ring *)(dev->bar2 + vmgmt_ring_c2g_offset(g, index)),
                                  .slots = dev->bar2 + vmgmt_slots_c2g_offset(g, index),
                                  .slot_count = g->ring_slots,
                                  .slot_size = g->slot_size };
}

/* CAS owner 0 -> token, or a dead owner's pid -> token. */
static bool channel_try_take(struct vmgmt_dev *dev, struct vmgmt_channel *ctl, uint32_t index, uint32_t token)
{
    uint32_t owner = __atomic_load_n(&ctl->owner, __ATOMIC_ACQUIRE);
    if (owner != 0 && !channel_pid_gone(owner))
        return false;
    if (!__atomic_compare_exchange_n(&ctl->owner, &owner, token, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return false;
    if (owner)
        report_verbose(dev->verbose, "channel %u: reclaimed from pid %u, which no longer exists", index, owner);
    return true;
}

struct channel_reset_wait {
    const struct vmgmt_channel *ctl;
    uint32_t want;
};

static bool channel_reset_complete(void *arg)
{
    const struct channel_reset_wait *w = arg;
    return __atomic_load_n(&w->ctl->reset_done, __ATOMIC_ACQUIRE) == w->want &&
           __atomic_load_n(&w->ctl->state, __ATOMIC_ACQUIRE) == VMGMT_CHANNEL_STATE_READY;
}

int channel_reset(struct channel *ch, uint32_t timeout_ms)
{
    struct vmgmt_dev *dev = ch->dev;
    struct channel_reset_wait w = { .ctl = ch->ctl };
    ch->generation = __atomic_add_fetch(&ch->ctl->generation, 1u, __ATOMIC_SEQ_CST);
    w.want = __atomic_add_fetch(&ch->ctl->reset_request, 1u, __ATOMIC_SEQ_CST);
    device_notify_core(dev, VMGMT_VECTOR_RING);
    enum wait_result r = wait_until(dev, channel_reset_complete, &w, NULL, clock_now_ns() + (uint64_t)timeout_ms * 1000000ull);
    if (r == WAIT_INTERRUPTED)
        return REPORT_EXIT_SYSTEM;
    if (r != WAIT_READY)
        return report_error(REPORT_EXIT_TIMEOUT,
                            "timed out after %u ms waiting for the management core to reset channel %u (reset_request %u, reset_done %u, state %u): the management core did not answer (is the vmgmt daemon running?)",
                            timeout_ms, ch->index, w.want, __atomic_load_n(&ch->ctl->reset_done, __ATOMIC_ACQUIRE),
                            __atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE));
    ring_attach_producer(&ch->g2c);
    ring_attach_consumer(&ch->c2g);
    uint32_t g2c_cons = __atomic_load_n(&ch->g2c.ring->cons, __ATOMIC_ACQUIRE);
    uint32_t c2g_prod = __atomic_load_n(&ch->c2g.ring->prod, __ATOMIC_ACQUIRE);
    if (g2c_cons != ch->g2c.local || c2g_prod != ch->c2g.local)
        return report_error(REPORT_EXIT_PROTOCOL,
                            "channel %u is not empty after the core reset it (g2c prod %u cons %u, c2g prod %u cons %u): protocol violation by the core; restart the vmgmt daemon",
                            ch->index, ch->g2c.local, g2c_cons, c2g_prod, ch->c2g.local);
    __atomic_store_n(&ch->c2g.ring->need_wakeup, 0u, __ATOMIC_RELEASE);
    report_verbose(dev->verbose, "channel %u: reset done, generation %u", ch->index, ch->generation);
    return REPORT_EXIT_OK;
}

int channel_claim_at(struct vmgmt_dev *dev, struct channel *ch, uint32_t index, uint32_t timeout_ms)
{
    memset(ch, 0, sizeof(*ch));
    ch->token = (uint32_t)getpid();
    if (index >= dev->geom.channel_count)
        return report_error(REPORT_EXIT_NO_CHANNEL, "channel %u does not exist: device %s has %u channels", index, dev->bdf, dev->geom.channel_count);
    channel_attach(dev, ch, index);
    if (!channel_try_take(dev, ch->ctl, index, ch->token)) {
        uint32_t owner = __atomic_load_n(&ch->ctl->owner, __ATOMIC_ACQUIRE);
        memset(ch, 0, sizeof(*ch));
        return report_error(REPORT_EXIT_NO_CHANNEL, "channel %u of device %s is owned by running process %u; wait for it to exit or stop it", index,
                            dev->bdf, owner);
    }
    ch->claimed = true;
    int rc = channel_reset(ch, timeout_ms);
    if (rc)
        channel_release(ch);
    return rc;
}

int channel_claim(struct vmgmt_dev *dev, struct channel *ch, uint32_t timeout_ms)
{
    memset(ch, 0, sizeof(*ch));
    ch->token = (uint32_t)getpid();
    const uint32_t count = dev->geom.channel_count;
    for (uint32_t i = 0; i < count; i++) {
        channel_attach(dev, ch, i);
        if (!channel_try_take(dev, ch->ctl, i, ch->token))
            continue;
        ch->claimed = true;
        int rc = channel_reset(ch, timeout_ms);
        if (rc)
            channel_release(ch);
        return rc;
    }
    char owners[256] = "";
    size_t used = 0;
    for (uint32_t i = 0; i < count && used < sizeof(owners); i++) {
        channel_attach(dev, ch, i);
        used += (size_t)snprintf(owners + used, sizeof(owners) - used, "%s%u", i ? "," : "", __atomic_load_n(&ch->ctl->owner, __ATOMIC_ACQUIRE));
    }
    memset(ch, 0, sizeof(*ch));
    return report_error(REPORT_EXIT_NO_CHANNEL,
                        "no free channel: all %u channels of device %s are owned by running processes (pids %s); wait for one to exit or stop one",
                        count, dev->bdf, count ? owners : "none");
}

void channel_release(struct channel *ch)
{
    if (!ch->claimed)
        return;
    uint32_t expected = ch->token;
    if (!__atomic_compare_exchange_n(&ch->ctl->owner, &expected, 0u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        report_verbose(ch->dev->verbose, "channel %u: owner is %u, not our pid %u, at release; left as is", ch->index, expected, ch->token);
    ch->claimed = false;
}

static bool channel_needs_reset(const struct channel *ch)
{
    return __atomic_load_n(&ch->ctl->state, __ATOMIC_ACQUIRE) == VMGMT_CHANNEL_STATE_NEEDS_RESET;
}

static bool channel_g2c_has_space(void *arg)
{
    const struct channel *ch = arg;
    return ring_can_produce(&ch->g2c) || channel_needs_reset(ch);
}

static bool channel_c2g_has_message(void *arg)
{
    const struct channel *ch = arg;
    return ring_can_consume(&ch->c2g) || channel_needs_reset(ch);
}

static enum channel_io channel_io_from_wait(enum wait_result r)
{
    switch (r) {
    case WAIT_READY: return CHANNEL_IO_OK;
    case WAIT_TIMEOUT: return CHANNEL_IO_TIMEOUT;
    case WAIT_INTERRUPTED: return CHANNEL_IO_INTERRUPTED;
    default: return CHANNEL_IO_ERROR;
    }
}

static enum channel_io channel_io_from_ring(enum ring_result r)
{
    return r == RING_BAD_LENGTH ? CHANNEL_IO_BAD_LENGTH : CHANNEL_IO_BAD_INDEX;
}

/* A pipeline whose answers are always ready never reaches a wait: SIGINT is checked here too. */
static bool channel_stop_requested(const struct channel *ch)
{
    return !ch->dev->ignore_stop && signals_stop_requested();
}

enum channel_io channel_send(struct channel *ch, const struct vmgmt_msg *msg, const void *payload, uint64_t deadline_ns)
{
    if (channel_stop_requested(ch))
        return CHANNEL_IO_INTERRUPTED;
    for (;;) {
        enum ring_result r = ring_produce(&ch->g2c, msg, payload);
        if (r == RING_OK)
            break;
        if (r != RING_FULL)
            return channel_io_from_ring(r);
        if (channel_needs_reset(ch))
            return CHANNEL_IO_NEEDS_RESET;
        /* The core does not ring us when it frees a slot: back off until it does. */
        enum channel_io io = channel_io_from_wait(wait_until(ch->dev, channel_g2c_has_space, ch, NULL, deadline_ns));
        if (io != CHANNEL_IO_OK)
            return io;
    }
    /* Pairs with the core's fence between setting need_wakeup and re-reading prod. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!(ch->dev->features & VMGMT_FEATURE_NOTIFY_SUPPRESSION) || __atomic_load_n(&ch->g2c.ring->need_wakeup, __ATOMIC_RELAXED) == 1)
        device_notify_core(ch->dev, VMGMT_VECTOR_RING);
    return CHANNEL_IO_OK;
}

enum channel_io channel_recv(struct channel *ch, struct vmgmt_msg *msg, void *payload, uint32_t payload_cap, uint64_t deadline_ns)
{
    if (channel_stop_requested(ch))
        return CHANNEL_IO_INTERRUPTED;
    for (;;) {
        enum ring_result r = ring_consume(&ch->c2g, msg, payload, payload_cap);
        if (r == RING_OK)
            return CHANNEL_IO_OK;
        if (r != RING_EMPTY)
            return channel_io_from_ring(r);
        if (channel_needs_reset(ch))
            return CHANNEL_IO_NEEDS_RESET;
        enum channel_io io =
            channel_io_from_wait(wait_until(ch->dev, channel_c2g_has_message, ch, &ch->c2g.ring->need_wakeup, deadline_ns));
        if (io != CHANNEL_IO_OK)
            return io;
    }
}

const char *channel_state_name(uint32_t state)
{
    switch (state) {
    case VMGMT_CHANNEL_STATE_IDLE: return "IDLE";
    case VMGMT_CHANNEL_STATE_READY: return "READY";
    case VMGMT_CHANNEL_STATE_NEEDS_RESET: return "NEEDS_RESET";
    default: return "UNKNOWN";
    }
}

int channel_report_io(const struct channel *ch, enum channel_io io, uint32_t timeout_ms, const char *during)
{
    int32_t last;
    switch (io) {
    case CHANNEL_IO_OK: return REPORT_EXIT_OK;
    case CHANNEL_IO_TIMEOUT:
        return report_error(REPORT_EXIT_TIMEOUT,
                            "timed out after %u ms waiting for the management core during %s on channel %u (is the vmgmt daemon running? a slow host disk may need a larger -t)",
                            timeout_ms, during, ch->index);
    case CHANNEL_IO_INTERRUPTED: return report_error(REPORT_EXIT_SYSTEM, "interrupted during %s; channel %u released", during, ch->index);
    case CHANNEL_IO_NEEDS_RESET:
        last = __atomic_load_n(&ch->ctl->last_status, __ATOMIC_ACQUIRE);
        return report_error(REPORT_EXIT_PROTOCOL,
                            "the management core put channel %u in NEEDS_RESET during %s: last_status %d (%s); the next command resets the channel",
                            ch->index, during, last, vmgmt_status_text(last));
    case CHANNEL_IO_BAD_INDEX:
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u during %s: ring index out of range (g2c prod %u cons %u, c2g prod %u cons %u); restart the vmgmt daemon",
                            ch->index, during, ch->g2c.local, __atomic_load_n(&ch->g2c.ring->cons, __ATOMIC_ACQUIRE),
                            __atomic_load_n(&ch->c2g.ring->prod, __ATOMIC_ACQUIRE), ch->c2g.local);
    case CHANNEL_IO_BAD_LENGTH:
        return report_error(REPORT_EXIT_PROTOCOL,
                            "protocol violation by the core on channel %u during %s: message length larger than a %u-byte slot allows; restart the vmgmt daemon",
                            ch->index, during, ch->c2g.slot_size);
    default:
        return report_error(REPORT_EXIT_SYSTEM, "waiting for the MSI-X eventfd failed during %s: %s (retry with --wait poll)", during,
                            strerror(errno));
    }
}
