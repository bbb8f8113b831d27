/* The agent's wake-up relay (src/relay.c) and waiting on it (src/wait.c), without a device: an eventfd
 * plays the RING vector's MSI-X eventfd, a thread plays the core (publish, fence, read need_wakeup, ring).
 * Ends with "relay: N passed, M failed". */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dev.h"
#include "relay.h"
#include "wait.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                                                \
    do {                                                                                                                \
        if (cond) {                                                                                                     \
            passed++;                                                                                                   \
        } else {                                                                                                        \
            failed++;                                                                                                   \
            fprintf(stderr, "relay-test: FAILED at line %d: %s: ", __LINE__, #cond);                                    \
            fprintf(stderr, __VA_ARGS__);                                                                               \
            fputc('\n', stderr);                                                                                        \
        }                                                                                                               \
    } while (0)

static bool readable_within(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1;
}

static void ring_irq(int irq_fd)
{
    uint64_t one = 1;
    if (write(irq_fd, &one, sizeof(one)) != sizeof(one))
        abort();
}

static void test_path(void)
{
    char buf[108];
    CHECK(relay_socket_path("/run/vmgmt-guest", "0000:00:03.0", buf, sizeof(buf)) == 0, "path");
    CHECK(strcmp(buf, "/run/vmgmt-guest/wake-0000:00:03.0.sock") == 0, "%s", buf);
    char longdir[200];
    memset(longdir, 'x', sizeof(longdir) - 1);
    longdir[sizeof(longdir) - 1] = 0;
    char big[400];
    CHECK(relay_socket_path(longdir, "0000:00:03.0", big, sizeof(big)) == -1, "a path longer than sun_path is refused");
}

/* Never blocks on a subscriber that does not read; drops those that hung up; keeps the others in order. */
static void test_broadcast(void)
{
    int a[2], b[2], c[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c);
    int subs[3] = { a[0], b[0], c[0] };
    unsigned count = 3;
    uint64_t sent = 0, coalesced = 0;
    close(b[1]); /* b's subscriber exited */
    unsigned removed = 0;
    uint64_t t0 = clock_now_ns();
    for (int i = 0; i < 200000; i++)
        removed += relay_broadcast(subs, &count, &sent, &coalesced);
    CHECK(clock_now_ns() - t0 < 20000000000ull, "200000 broadcasts to a subscriber that never reads do not block");
    CHECK(removed == 1 && count == 2, "the hung-up subscriber is removed (removed %u, count %u)", removed, count);
    CHECK(subs[0] == a[0] && subs[1] == c[0], "the rest keep their order");
    CHECK(coalesced > 0, "a full socket buffer coalesces (sent %llu, coalesced %llu)", (unsigned long long)sent, (unsigned long long)coalesced);
    CHECK(relay_drain(a[1]) == RELAY_WOKEN && relay_drain(a[1]) == RELAY_NOTHING, "a drain reads everything");
    sent = coalesced = 0;
    relay_broadcast(subs, &count, &sent, &coalesced);
    CHECK(sent == 1 && coalesced == 1, "after reading, a's next wake-up is sent again; c's (unread) coalesces (sent %llu)", (unsigned long long)sent);
    close(c[1]);
    CHECK(relay_prune(subs, &count) == 1 && count == 1, "prune drops a closed subscriber");
    close(a[0]);
    CHECK(relay_drain(a[1]) == RELAY_GONE, "EOF is RELAY_GONE");
    close(a[1]);
}

/* The server: the accept-time byte, a wake-up per interrupt to every subscriber, EOF on stop. */
static void test_server(const char *dir)
{
    int irq = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), self = -1, client = -1, late = -1;
    struct relay_server s;
    char why[256];
    CHECK(relay_connect(dir, "bdf", &client, why, sizeof(why)) == -1 && strstr(why, "no agent relay"), "no relay yet: %s", why);
    CHECK(relay_server_start(&s, dir, "bdf", irq, &self, why, sizeof(why)) == 0, "start: %s", why);
    struct stat st;
    CHECK(stat(s.path, &st) == 0 && (st.st_mode & 0777) == 0600, "the socket is 0600 (mode %o)", st.st_mode & 0777);
    CHECK(relay_connect(dir, "bdf", &client, why, sizeof(why)) == 0, "connect: %s", why);
    CHECK(readable_within(client, 2000) && relay_drain(client) == RELAY_WOKEN, "an accepted subscriber gets one byte at once");
    CHECK(relay_drain(self) == RELAY_NOTHING, "the agent's own subscription has nothing yet");
    for (int round = 0; round < 50; round++) {
        ring_irq(irq);
        bool c = readable_within(client, 2000), me = readable_within(self, 2000);
        CHECK(c && me, "round %d: both subscribers woken (client %d, self %d)", round, c, me);
        relay_drain(client);
        relay_drain(self);
    }
    CHECK(relay_connect(dir, "bdf", &late, why, sizeof(why)) == 0, "second client: %s", why);
    ring_irq(irq);
    CHECK(readable_within(late, 2000) && readable_within(client, 2000), "a later subscriber is woken with the first");
    close(late);
    ring_irq(irq);
    CHECK(readable_within(client, 2000), "a subscriber that left does not stop the others");
    relay_drain(client);
    relay_server_stop(&s);
    CHECK(readable_within(client, 2000) && relay_drain(client) == RELAY_GONE, "on stop every subscriber sees EOF");
    CHECK(stat(s.path, &st) != 0 && errno == ENOENT, "the socket file is removed");
    close(client);
    close(self);
    close(irq);
}

/* A stale socket of a dead agent: refused, then replaced by the next agent. */
static void test_stale(const char *dir)
{
    int irq = eventfd(0, EFD_NONBLOCK), self, client;
    struct relay_server s;
    char why[256];
    relay_server_start(&s, dir, "stale", irq, &self, why, sizeof(why));
    /* Leave the file behind as a SIGKILLed agent would: stop the thread but keep the path. */
    s.path_ino = 0;
    relay_server_stop(&s);
    close(self);
    CHECK(relay_connect(dir, "stale", &client, why, sizeof(why)) == -1 && strstr(why, "gone"), "a dead agent's socket is refused: %s", why);
    CHECK(relay_server_start(&s, dir, "stale", irq, &self, why, sizeof(why)) == 0, "a new agent takes the path: %s", why);
    CHECK(relay_connect(dir, "stale", &client, why, sizeof(why)) == 0, "and serves it: %s", why);
    close(client);
    relay_server_stop(&s);
    close(self);
    close(irq);
}

/* The core: waits for a waiter to sleep, then publishes and rings only if need_wakeup says so. */
struct fake_core {
    uint32_t need_wakeup;
    uint32_t prod;
    int irq;
    int rounds;
    volatile int stop;
    unsigned delay_us;
};

static void *core_thread(void *arg)
{
    struct fake_core *c = arg;
    for (int i = 1; i <= c->rounds && !c->stop; i++) {
        if (c->delay_us) {
            struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(c->delay_us * (unsigned)(i % 7)) * 1000L };
            nanosleep(&ts, NULL);
        }
        __atomic_store_n(&c->prod, (uint32_t)i, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(&c->need_wakeup, __ATOMIC_RELAXED) == 1)
            ring_irq(c->irq);
        while (!c->stop && __atomic_load_n(&c->prod, __ATOMIC_ACQUIRE) != 0) /* the waiter takes it */
            sched_yield();
    }
    return NULL;
}

static bool core_published(void *arg)
{
    return __atomic_load_n(&((struct fake_core *)arg)->prod, __ATOMIC_ACQUIRE) != 0;
}

/* wait_until on the relay never misses a wake-up (a miss would show as a wait running to its deadline). */
static void test_wait_on_relay(const char *dir)
{
    struct fake_core core = { .irq = eventfd(0, EFD_NONBLOCK), .rounds = 2000, .delay_us = 20 };
    struct relay_server s;
    char why[256];
    int self, client;
    relay_server_start(&s, dir, "wait", core.irq, &self, why, sizeof(why));
    CHECK(relay_connect(dir, "wait", &client, why, sizeof(why)) == 0, "connect: %s", why);
    struct vmgmt_dev dev;
    dev_init_empty(&dev, false);
    dev.spin_ns = 0;
    dev.relay.fd = client;
    dev.wait = DEV_WAIT_RELAY;
    pthread_t t;
    pthread_create(&t, NULL, core_thread, &core);
    int ok = 0, slow = 0;
    for (int i = 0; i < core.rounds; i++) {
        uint64_t t0 = clock_now_ns();
        enum wait_result r = wait_until(&dev, core_published, &core, &core.need_wakeup, t0 + 5000000000ull);
        if (r == WAIT_READY)
            ok++;
        if (clock_now_ns() - t0 > 2000000000ull)
            slow++;
        CHECK(__atomic_load_n(&core.need_wakeup, __ATOMIC_RELAXED) == 0, "need_wakeup is cleared after the wait");
        __atomic_store_n(&core.prod, 0u, __ATOMIC_RELEASE);
    }
    pthread_join(t, NULL);
    CHECK(ok == core.rounds && slow == 0, "%d of %d waits woken, %d slow", ok, core.rounds, slow);
    CHECK(dev.wait == DEV_WAIT_RELAY, "still on the relay");

    /* The agent goes away while we wait: the waiter notices EOF, polls, and still sees the condition. */
    struct fake_core later = { .irq = core.irq, .rounds = 1, .delay_us = 0 };
    relay_server_stop(&s);
    close(self);
    pthread_create(&t, NULL, core_thread, &later);
    enum wait_result r = wait_until(&dev, core_published, &later, &later.need_wakeup, clock_now_ns() + 5000000000ull);
    later.stop = 1;
    pthread_join(t, NULL);
    CHECK(r == WAIT_READY, "after the relay went away the wait still ends (result %d)", r);
    CHECK(dev.wait == DEV_WAIT_POLL && dev.relay.fd == -1, "and the waiter polls now (wait %s)", dev_wait_name(dev.wait));
    close(core.irq);
}

int main(void)
{
    char dir[] = "/tmp/vmgmt-relay-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char sub[64];
    snprintf(sub, sizeof(sub), "%s/run", dir);
    test_path();
    test_broadcast();
    test_server(sub);
    test_stale(sub);
    test_wait_on_relay(sub);
    rmdir(sub);
    rmdir(dir);
    printf("relay: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
