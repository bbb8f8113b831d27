/* wait: wait for a condition in shared memory. Spin for dev->spin_ns; then, if the caller gave a need_wakeup flag and
 * the MSI-X eventfd is set up, publish need_wakeup = 1, re-check, and block on the eventfd; otherwise sleep
 * with an adaptive back-off (5 us doubling to dev->backoff_max_ns, 1 ms by default). */
#ifndef VG_WAIT_H
#define VG_WAIT_H
#include <stdbool.h>
#include <stdint.h>

#include "dev.h"

#define WAIT_BACKOFF_MIN_NS 5000ull

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
