#include "wait.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
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

/* Blocks on the MSI-X eventfd; the caller has published need_wakeup and re-checked. */
static enum wait_result wait_block_eventfd(int fd, uint64_t deadline_ns)
{
    uint64_t now = clock_now_ns();
    if (now >= deadline_ns)
        return WAIT_TIMEOUT;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct timespec ts = wait_timespec(deadline_ns - now);
    int n = ppoll(&pfd, 1, &ts, NULL);
    if (n < 0)
        return errno == EINTR ? WAIT_READY : WAIT_ERROR;
    if (n > 0) {
        uint64_t count;
        if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
            return WAIT_ERROR;
    }
    return WAIT_READY; /* "go and look again", not "the condition holds" */
}

enum wait_result wait_until(struct vmgmt_dev *dev, wait_ready_fn ready, void *arg, uint32_t *need_wakeup, uint64_t deadline_ns)
{
    /* Checked first as well: a pipeline whose answers are ready within the spin would never see it. */
    if (!dev->ignore_stop && signals_stop_requested())
        return WAIT_INTERRUPTED;
    if (wait_spin(ready, arg, dev->spin_ns, deadline_ns))
        return WAIT_READY;
    bool use_irq = need_wakeup && dev->wait == DEV_WAIT_MSIX && dev->vfio.irq_fd[VMGMT_VECTOR_RING] >= 0;
    uint64_t backoff_ns = WAIT_BACKOFF_MIN_NS;
    enum wait_result result = WAIT_TIMEOUT;
    for (;;) {
        if (!dev->ignore_stop && signals_stop_requested()) {
            result = WAIT_INTERRUPTED;
            break;
        }
        if (use_irq) {
            __atomic_store_n(need_wakeup, 1u, __ATOMIC_RELAXED);
            /* Pairs with the producer's fence between publishing prod and reading need_wakeup: either it
             * sees our flag and rings, or we see its prod here. */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        }
        if (ready(arg)) {
            result = WAIT_READY;
            break;
        }
        uint64_t now = clock_now_ns();
        if (now >= deadline_ns)
            break;
        if (use_irq) {
            enum wait_result r = wait_block_eventfd(dev->vfio.irq_fd[VMGMT_VECTOR_RING], deadline_ns);
            if (r == WAIT_ERROR) {
                result = r;
                break;
            }
        } else {
            uint64_t left = deadline_ns - now;
            struct timespec ts = wait_timespec(backoff_ns < left ? backoff_ns : left);
            nanosleep(&ts, NULL);
            backoff_ns = backoff_ns * 2 < dev->backoff_max_ns ? backoff_ns * 2 : dev->backoff_max_ns;
        }
    }
    if (use_irq)
        __atomic_store_n(need_wakeup, 0u, __ATOMIC_RELAXED);
    return result;
}
