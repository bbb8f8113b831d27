#include "wait.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "relay.h"
#include "report.h"
#include "signals.h"

static struct timespec wait_timespec(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
    return ts;
}

static bool wait_spin(wait_ready_fn ready, void *arg, uint64_t spin_ns, uint64_t deadline_ns)
{
    uint64_t now = clock_now_ns();
    uint64_t end = now + spin_ns < deadline_ns ? now + spin_ns : deadline_ns;
    do {
        if (ready(arg))
            return true;
        __builtin_ia32_pause();
    } while (clock_now_ns() < end);
    return ready(arg);
}

/* The fd a waiter blocks on once it has published need_wakeup: its relay subscription (a command served by
 * the agent, or the agent's main thread served by its own relay thread), else the RING eventfd of a process
 * that holds vfio itself; -1: poll. */
static int wait_block_fd(const struct vmgmt_dev *dev, bool *is_relay)
{
    *is_relay = dev->relay.fd >= 0;
    if (*is_relay)
        return dev->relay.fd;
    if (dev->wait == DEV_WAIT_MSIX && dev->vfio.irq_fd[VMGMT_VECTOR_RING] >= 0)
        return dev->vfio.irq_fd[VMGMT_VECTOR_RING];
    return -1;
}

/* The agent went away (EOF on the relay socket): poll from now on, and look for a relay again later. */
static void wait_relay_lost(struct vmgmt_dev *dev)
{
    close(dev->relay.fd);
    dev->relay.fd = -1;
    dev->wait = DEV_WAIT_POLL;
    dev->relay.retry_ns = clock_now_ns() + WAIT_RELAY_RETRY_NS;
    fprintf(stderr, "vmgmt-guest: the agent's wake-up relay went away (the agent stopped or restarted); waiting by polling%s\n",
            dev->relay.wanted ? " until it is back" : "");
}

/* Polling under --wait auto: a relay that came up since (a restarted agent) is taken at the next look. */
static void wait_relay_retry(struct vmgmt_dev *dev, uint64_t now)
{
    if (!dev->relay.wanted || dev->relay.fd >= 0 || dev->relay.server || now < dev->relay.retry_ns)
        return;
    dev->relay.retry_ns = now + WAIT_RELAY_RETRY_NS;
    char why[256];
    int fd;
    if (relay_connect(RELAY_DIR, dev->bdf, &fd, why, sizeof(why)) != 0)
        return;
    dev->relay.fd = fd;
    dev->wait = DEV_WAIT_RELAY;
    report_verbose(dev->verbose, "the agent's wake-up relay is back: waiting on it again (wait=relay)");
}

/* Blocks on fd; the caller has published need_wakeup and re-checked. WAIT_READY means "go and look again",
 * not "the condition holds". */
static enum wait_result wait_block(struct vmgmt_dev *dev, int fd, bool is_relay, uint64_t deadline_ns)
{
    uint64_t now = clock_now_ns();
    if (now >= deadline_ns)
        return WAIT_TIMEOUT;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct timespec ts = wait_timespec(deadline_ns - now);
    int n = ppoll(&pfd, 1, &ts, NULL);
    if (n < 0)
        return errno == EINTR ? WAIT_READY : WAIT_ERROR;
    if (n == 0)
        return WAIT_READY;
    if (is_relay) {
        if (relay_drain(fd) != RELAY_GONE)
            return WAIT_READY;
        if (dev->relay.server) {
            errno = EPIPE; /* our own relay thread stopped: the agent starts over */
            return WAIT_ERROR;
        }
        wait_relay_lost(dev);
        return WAIT_READY;
    }
    uint64_t count;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        return WAIT_ERROR;
    return WAIT_READY;
}

/*
 * The lost-wakeup race, and the order that closes it. A waiter that blocks must be sure that whatever the
 * core publishes after its last look reaches it as a wake-up:
 *   1. subscribed first: a relay client's connect() returned (session_open, long before any wait). From
 *      then on every interrupt the agent's relay thread takes reaches it: interrupts it forwards after
 *      accept() by the broadcast, an interrupt between connect() and accept() by the byte every accepted
 *      connection gets at once (src/relay.c).
 *   2. need_wakeup = 1 on the c2g ring, then a full fence.
 *   3. re-check the ring (ready()).
 *   4. block on the fd.
 * The core publishes prod, fences, reads need_wakeup and rings the RING vector if it is 1. Either the
 * core's read sees our 1 (so the interrupt comes, after step 2, hence after step 1: the byte is on our
 * socket, or in the eventfd, before or while we block) or our step-3 read sees its prod. Bytes coalesce:
 * one unread byte is as good as many, since each only says "look". Publishing need_wakeup before the
 * subscription exists (1 after 2) would let the interrupt go to a relay that does not know us yet.
 */
enum wait_result wait_until(struct vmgmt_dev *dev, wait_ready_fn ready, void *arg, uint32_t *need_wakeup, uint64_t deadline_ns)
{
    /* Checked first as well: a pipeline whose answers are ready within the spin would never see it. */
    if (!dev->ignore_stop && signals_stop_requested())
        return WAIT_INTERRUPTED;
    if (wait_spin(ready, arg, dev->spin_ns, deadline_ns))
        return WAIT_READY;
    uint64_t backoff_ns = WAIT_BACKOFF_MIN_NS;
    enum wait_result result = WAIT_TIMEOUT;
    bool published = false;
    for (;;) {
        if (!dev->ignore_stop && signals_stop_requested()) {
            result = WAIT_INTERRUPTED;
            break;
        }
        bool is_relay;
        int fd = need_wakeup ? wait_block_fd(dev, &is_relay) : -1;
        if (fd >= 0) {
            __atomic_store_n(need_wakeup, 1u, __ATOMIC_RELAXED);
            published = true;
            /* Pairs with the producer's fence between publishing prod and reading need_wakeup: either it
             * sees our flag and rings, or we see its prod here. */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        } else if (published) {
            __atomic_store_n(need_wakeup, 0u, __ATOMIC_RELAXED); /* the relay went away: nobody would deliver it */
            published = false;
        }
        if (ready(arg)) {
            result = WAIT_READY;
            break;
        }
        uint64_t now = clock_now_ns();
        if (now >= deadline_ns)
            break;
        if (fd >= 0) {
            enum wait_result r = wait_block(dev, fd, is_relay, deadline_ns);
            if (r == WAIT_ERROR) {
                result = r;
                break;
            }
        } else {
            wait_relay_retry(dev, now);
            if (dev->relay.fd >= 0 && need_wakeup)
                continue; /* subscribed now: publish need_wakeup and re-check before blocking */
            uint64_t left = deadline_ns - now;
            struct timespec ts = wait_timespec(backoff_ns < left ? backoff_ns : left);
            nanosleep(&ts, NULL);
            backoff_ns = backoff_ns * 2 < dev->backoff_max_ns ? backoff_ns * 2 : dev->backoff_max_ns;
        }
    }
    if (published)
        __atomic_store_n(need_wakeup, 0u, __ATOMIC_RELAXED);
    return result;
}
