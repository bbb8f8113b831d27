/* wait: wait for a condition in shared memory. Spin for dev->spin_ns; then, if the caller gave a need_wakeup flag and
 * the process has a way to hear the RING interrupt (the agent's relay, or the MSI-X eventfd of vfio it holds
 * itself), publish need_wakeup = 1, re-check, and block; otherwise sleep with an adaptive back-off (5 us
 * doubling to dev->backoff_max_ns, 1 ms by default). The ordering that closes the lost-wakeup race is
 * written down above wait_until in wait.c. */
#ifndef VG_WAIT_H
#define VG_WAIT_H
#include <stdbool.h>
#include <stdint.h>

#include "dev.h"

#define WAIT_BACKOFF_MIN_NS 5000ull
#define WAIT_RELAY_RETRY_NS 1000000000ull /* --wait auto, polling: how often to look for the agent's relay again */

enum wait_result {
    WAIT_READY,
    WAIT_TIMEOUT,
    WAIT_INTERRUPTED, /* SIGINT/SIGTERM */
    WAIT_ERROR,       /* poll/read on the eventfd failed; errno says why */
};

typedef bool (*wait_ready_fn)(void *arg);

/* Waits until ready(arg) or until CLOCK_MONOTONIC reaches deadline_ns. need_wakeup is the consumer's flag
 * in the ring the peer produces into (NULL when the peer never rings for this condition). */
enum wait_result wait_until(struct vmgmt_dev *dev, wait_ready_fn ready, void *arg, uint32_t *need_wakeup, uint64_t deadline_ns);

#endif
