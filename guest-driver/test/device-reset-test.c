/* Runs src/device.c's device reset handshake against a fake core (a thread over a header in plain memory):
 * two processes asking at once, a reset_done a rogue left ahead of reset_request, and a reset of a header
 * whose magic and geometry are garbage. Ends with "device-reset: N passed, M failed". */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dev.h"
#include "device.h"
#include "report.h"

enum core_behaviour {
    CORE_PLAIN,           /* answers reset_request as it finds it */
    CORE_SECOND_REQUEST,  /* another process increments reset_request before the core reads it */
};

struct fake {
    _Alignas(64) uint8_t bar0[256];
    _Alignas(64) uint8_t bar2[4096];
    struct vmgmt_dev dev;
    pthread_t core;
    enum core_behaviour behaviour;
    uint32_t delay_ms;          /* before the core answers */
    volatile int stop;
    volatile int answered;      /* the core wrote reset_done at least once */
};

static struct vmgmt_header *hdr(struct fake *f)
{
    return (struct vmgmt_header *)f->bar2;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* What DeviceCore.handleDeviceReset does, reduced to the counters and the status. */
static void *core_thread(void *arg)
{
    struct fake *f = arg;
    struct vmgmt_header *h = hdr(f);
    while (!f->stop) {
        uint32_t req = __atomic_load_n(&h->reset_request, __ATOMIC_ACQUIRE);
        if (req != __atomic_load_n(&h->reset_done, __ATOMIC_ACQUIRE)) {
            sleep_ms(f->delay_ms);
            if (f->behaviour == CORE_SECOND_REQUEST) {
                req = __atomic_add_fetch(&h->reset_request, 1u, __ATOMIC_SEQ_CST);
                f->behaviour = CORE_PLAIN;
            }
            h->magic = VMGMT_MAGIC;
            h->host_features = VMGMT_FEATURE_NOTIFY_SUPPRESSION;
            __atomic_store_n(&h->device_status, 0u, __ATOMIC_SEQ_CST);
            __atomic_store_n(&h->reset_done, req, __ATOMIC_RELEASE);
            f->answered = 1;
        }
        sleep_ms(1);
    }
    return NULL;
}

static void fake_start(struct fake *f, enum core_behaviour behaviour, uint32_t delay_ms)
{
    memset(f, 0, sizeof(*f));
    dev_init_empty(&f->dev, false);
    snprintf(f->dev.bdf, sizeof(f->dev.bdf), "fake");
    f->dev.bar0 = f->bar0;
    f->dev.bar2 = f->bar2;
    f->dev.bar0_size = sizeof(f->bar0);
    f->dev.bar2_size = sizeof(f->bar2);
    f->dev.hdr = hdr(f);
    f->dev.geom.vectors = 2;
    f->behaviour = behaviour;
    f->delay_ms = delay_ms;
    pthread_create(&f->core, NULL, core_thread, f);
}

static void fake_stop(struct fake *f)
{
    f->stop = 1;
    pthread_join(f->core, NULL);
}

static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

int main(void)
{
    static struct fake f;

    /* Two processes ask for a device reset at once: one reset answers both, reset_done equals the later
     * request only, and the earlier one must not wait for a value that never comes. */
    fake_start(&f, CORE_SECOND_REQUEST, 0);
    hdr(&f)->reset_request = hdr(&f)->reset_done = 7;
    int rc = device_init(&f.dev, 1000);
    fake_stop(&f);
    check(rc == REPORT_EXIT_OK, "a reset answered together with another process's request completes");
    check(hdr(&f)->reset_done == 9 && (hdr(&f)->device_status & VMGMT_STATUS_BIT_DRIVER_OK), "... and the device is DRIVER_OK");

    /* A rogue left reset_done ahead of reset_request: only the core's real answer completes the reset. */
    fake_start(&f, CORE_PLAIN, 50);
    hdr(&f)->reset_request = 100;
    hdr(&f)->reset_done = 5000;
    rc = device_init(&f.dev, 1000);
    int answered = f.answered;
    fake_stop(&f);
    check(rc == REPORT_EXIT_OK && answered, "a reset_done left ahead by garbage does not count as the core's answer");
    check(hdr(&f)->reset_done == 101, "... the core answered request 101");

    /* A header scribbled over: device_reset_unchecked uses only the reset counters, and the core's answer
     * makes the header valid again. */
    fake_start(&f, CORE_PLAIN, 0);
    memset(f.bar2, 0xa5, 256);
    hdr(&f)->reset_done = hdr(&f)->reset_request;
    rc = device_reset_unchecked(&f.dev, 1000);
    fake_stop(&f);
    check(rc == REPORT_EXIT_OK && hdr(&f)->magic == VMGMT_MAGIC, "device_reset_unchecked resets a device whose header is garbage");

    /* No core: a timeout, in words. */
    fake_start(&f, CORE_PLAIN, 0);
    fake_stop(&f);
    hdr(&f)->reset_request = hdr(&f)->reset_done = 3;
    rc = device_reset_unchecked(&f.dev, 50);
    check(rc == REPORT_EXIT_TIMEOUT, "without a core the reset times out (exit 5)");

    printf("device-reset: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
