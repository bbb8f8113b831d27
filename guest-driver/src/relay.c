#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int relay_fail(char *why, size_t why_cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int relay_fail(char *why, size_t why_cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_cap, fmt, ap);
    va_end(ap);
    return -1;
}

int relay_socket_path(const char *dir, const char *bdf, char *buf, size_t cap)
{
    struct sockaddr_un sun;
    size_t limit = cap < sizeof(sun.sun_path) ? cap : sizeof(sun.sun_path);
    int n = snprintf(buf, cap, "%s/wake-%s.sock", dir, bdf);
    return n < 0 || (size_t)n >= limit ? -1 : 0;
}

static void relay_remove_at(int *subs, unsigned *count, unsigned i)
{
    close(subs[i]);
    memmove(&subs[i], &subs[i + 1], (*count - i - 1) * sizeof(subs[0]));
    (*count)--;
}

unsigned relay_broadcast(int *subs, unsigned *count, uint64_t *sent, uint64_t *coalesced)
{
    unsigned removed = 0;
    for (unsigned i = 0; i < *count;) {
        ssize_t n = send(subs[i], "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == 1) {
            (*sent)++;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            (*coalesced)++; /* unread bytes wait already: this wake-up coalesces with them */
        } else {
            relay_remove_at(subs, count, i);
            removed++;
            continue;
        }
        i++;
    }
    return removed;
}

unsigned relay_prune(int *subs, unsigned *count)
{
    unsigned removed = 0;
    for (unsigned i = 0; i < *count;) {
        struct pollfd p = { .fd = subs[i], .events = POLLRDHUP };
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
            relay_remove_at(subs, count, i);
            removed++;
            continue;
        }
        i++;
    }
    return removed;
}

/* Takes every pending connection; each gets one byte at once (see relay.h: the accept-time wake-up). */
static void relay_accept(struct relay_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE and the like: the rest wait in the backlog */
        }
        if (s->sub_count == RELAY_MAX_SUBSCRIBERS)
            s->dropped += relay_prune(s->subs, &s->sub_count);
        if (s->sub_count == RELAY_MAX_SUBSCRIBERS) {
            close(fd); /* the client sees EOF and polls */
            continue;
        }
        s->subs[s->sub_count++] = fd;
        if (send(fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
            s->sent++;
    }
}

static void *relay_thread(void *arg)
{
    struct relay_server *s = arg;
    for (;;) {
        struct pollfd p[3] = { { .fd = s->irq_fd, .events = POLLIN }, { .fd = s->listen_fd, .events = POLLIN }, { .fd = s->stop_fd, .events = POLLIN } };
        int n = poll(p, 3, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[2].revents)
            break;
        if (p[0].revents & POLLIN) {
            uint64_t count;
            if (read(s->irq_fd, &count, sizeof(count)) == sizeof(count)) {
                __atomic_store_n(&s->interrupts, s->interrupts + 1, __ATOMIC_RELAXED);
                uint64_t sent = 0, coalesced = 0;
                unsigned removed = relay_broadcast(s->subs, &s->sub_count, &sent, &coalesced);
                __atomic_store_n(&s->sent, s->sent + sent, __ATOMIC_RELAXED);
                __atomic_store_n(&s->coalesced, s->coalesced + coalesced, __ATOMIC_RELAXED);
                __atomic_store_n(&s->dropped, s->dropped + removed, __ATOMIC_RELAXED);
            }
        } else if (p[0].revents & (POLLERR | POLLNVAL)) {
            break;
        }
        if (p[1].revents & POLLIN)
            relay_accept(s);
    }
    return NULL;
}

/* Starts the relay thread on s (signals blocked in it: SIGINT/SIGTERM must interrupt the main thread's
 * waits, never land here). */
static int relay_spawn(struct relay_server *s, char *why, size_t why_cap)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    int err = pthread_create(&s->thread, NULL, relay_thread, s);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (err)
        return relay_fail(why, why_cap, "cannot start the relay thread: %s", strerror(err));
    s->running = true;
    return 0;
}

int relay_server_start(struct relay_server *s, const char *dir, const char *bdf, int irq_fd, int *self_fd, char *why, size_t why_cap)
{
    memset(s, 0, sizeof(*s));
    s->irq_fd = irq_fd;
    s->listen_fd = s->stop_fd = s->self_sub_fd = -1;
    *self_fd = -1;
    if (relay_socket_path(dir, bdf, s->path, sizeof(s->path)))
        return relay_fail(why, why_cap, "the relay socket path %s/wake-%s.sock is too long", dir, bdf);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return relay_fail(why, why_cap, "cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return relay_fail(why, why_cap, "%s is not a directory", dir);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0)
        return relay_fail(why, why_cap, "socketpair() failed: %s", strerror(errno));
    s->subs[s->sub_count++] = pair[0];
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->listen_fd < 0 || s->stop_fd < 0) {
        relay_fail(why, why_cap, "socket()/eventfd() failed: %s", strerror(errno));
        goto fail;
    }
    /* We hold the vfio group, which one process only can: a socket file left here is a dead agent's. */
    unlink(s->path);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
    mode_t old = umask(0177);
    int b = bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (b != 0 || listen(s->listen_fd, RELAY_BACKLOG) != 0) {
        relay_fail(why, why_cap, "cannot listen on %s: %s", s->path, strerror(errno));
        goto fail;
    }
    if (stat(s->path, &st) == 0)
        s->path_ino = st.st_ino;
    if (relay_spawn(s, why, why_cap) != 0) {
        unlink(s->path);
        goto fail;
    }
    s->self_sub_fd = pair[0];
    *self_fd = pair[1];
    return 0;
fail:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    close(pair[0]);
    close(pair[1]);
    s->listen_fd = s->stop_fd = -1;
    s->sub_count = 0;
    return -1;
}

void relay_server_pause(struct relay_server *s)
{
    if (!s->running)
        return;
    uint64_t one = 1;
    if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one)) {
        /* an eventfd write of 1 fails only at the counter's limit: the thread is stopping already */
    }
    pthread_join(s->thread, NULL);
    s->running = false;
    uint64_t drained;
    if (read(s->stop_fd, &drained, sizeof(drained)) < 0) {
        /* EAGAIN: nothing to drain */
    }
}

int relay_server_resume(struct relay_server *s, char *why, size_t why_cap)
{
    if (s->running)
        return 0;
    if (s->listen_fd < 0)
        return relay_fail(why, why_cap, "the relay was stopped, not paused");
    return relay_spawn(s, why, why_cap);
}

int relay_server_adopt(struct relay_server *s, const char *path, uint64_t path_ino, int listen_fd, const int *subs, unsigned sub_count, int irq_fd,
                       int *self_fd, char *why, size_t why_cap)
{
    memset(s, 0, sizeof(*s));
    s->irq_fd = irq_fd;
    s->listen_fd = s->stop_fd = s->self_sub_fd = -1;
    *self_fd = -1;
    if (strlen(path) >= sizeof(s->path) || sub_count >= RELAY_MAX_SUBSCRIBERS)
        return relay_fail(why, why_cap, "cannot adopt a relay with path %s and %u subscribers", path, sub_count);
    snprintf(s->path, sizeof(s->path), "%s", path);
    s->path_ino = path_ino;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0)
        return relay_fail(why, why_cap, "socketpair() failed: %s", strerror(errno));
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0) {
        close(pair[0]);
        close(pair[1]);
        return relay_fail(why, why_cap, "eventfd() failed: %s", strerror(errno));
    }
    s->subs[s->sub_count++] = pair[0];
    for (unsigned i = 0; i < sub_count; i++)
        s->subs[s->sub_count++] = subs[i];
    s->listen_fd = listen_fd;
    if (relay_spawn(s, why, why_cap) != 0) {
        close(s->stop_fd);
        close(pair[0]);
        close(pair[1]);
        s->stop_fd = s->listen_fd = -1;
        s->sub_count = 0;
        return -1; /* the adopted fds stay the caller's */
    }
    s->self_sub_fd = pair[0];
    *self_fd = pair[1];
    /* An interrupt that came while no relay thread ran is still counted in the eventfd: the thread reads
     * it at once and every subscriber looks again. */
    return 0;
}

void relay_server_forget(struct relay_server *s)
{
    relay_server_pause(s);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    s->listen_fd = s->stop_fd = -1;
    for (unsigned i = 0; i < s->sub_count; i++)
        close(s->subs[i]);
    s->sub_count = 0;
}

void relay_server_stop(struct relay_server *s)
{
    relay_server_pause(s);
    if (s->listen_fd < 0)
        return;
    struct stat st;
    if (stat(s->path, &st) == 0 && st.st_ino == s->path_ino)
        unlink(s->path);
    close(s->listen_fd);
    close(s->stop_fd);
    s->listen_fd = s->stop_fd = -1;
    for (unsigned i = 0; i < s->sub_count; i++)
        close(s->subs[i]);
    s->sub_count = 0;
}

int relay_connect(const char *dir, const char *bdf, int *fd, char *why, size_t why_cap)
{
    *fd = -1;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (relay_socket_path(dir, bdf, sun.sun_path, sizeof(sun.sun_path)))
        return relay_fail(why, why_cap, "the relay socket path for %s is too long", bdf);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return relay_fail(why, why_cap, "socket() failed: %s", strerror(errno));
    if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int err = errno;
        close(s);
        if (err == ENOENT)
            return relay_fail(why, why_cap, "no agent relay at %s (no vmgmt-guest agent holds MSI-X for %s)", sun.sun_path, bdf);
        if (err == ECONNREFUSED)
            return relay_fail(why, why_cap, "%s refused the connection: the agent that served it is gone", sun.sun_path);
        if (err == EAGAIN)
            return relay_fail(why, why_cap, "%s is not accepting (its backlog is full)", sun.sun_path);
        return relay_fail(why, why_cap, "cannot connect to %s: %s", sun.sun_path, strerror(err));
    }
    *fd = s;
    return 0;
}

enum relay_drain relay_drain(int fd)
{
    bool woken = false;
    char buf[256];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            woken = true;
            continue;
        }
        if (n == 0)
            return RELAY_GONE;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return woken ? RELAY_WOKEN : RELAY_NOTHING;
        return RELAY_GONE;
    }
}
