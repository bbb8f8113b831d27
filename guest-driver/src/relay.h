/* relay: the agent's wake-up relay. A vfio group opens in one process only, so the MSI-X interrupt of the
 * device (one RING vector for every channel) reaches exactly one process: the resident agent. The agent
 * runs a relay thread that blocks on the RING eventfd and, on every interrupt, sends one byte to every
 * subscriber: a UNIX stream socket at RELAY_DIR/wake-<BDF>.sock (mode 0600 in a 0700 directory: root
 * only, like the sysfs BARs) that other vmgmt-guest processes of the same device connect to. The agent's
 * own main thread is a subscriber too (a socketpair), so a copy in progress never delays anyone's wake-up.
 *
 * A byte means "go and look at your ring", never "there is a message": sends are non-blocking, and a
 * subscriber whose socket buffer is full (it does not read) loses only wake-ups that coalesce with the
 * unread ones. A subscriber is subscribed from the moment connect() returns: the relay thread sends every
 * connection it accepts one byte at once, which covers an interrupt it forwarded between the client's
 * connect() and its accept(). src/wait.c documents the order a waiter keeps (subscribe, publish
 * need_wakeup, fence, re-check, block). A subscriber sees EOF when the agent goes away and polls from then. */
#ifndef VG_RELAY_H
#define VG_RELAY_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_DIR "/run/vmgmt-guest"
#define RELAY_MAX_SUBSCRIBERS 128u
#define RELAY_BACKLOG 64

struct relay_server {
    int irq_fd;                              /* borrowed: the RING vector's eventfd */
    int listen_fd;
    int stop_fd;                             /* an eventfd: written to stop the thread */
    int subs[RELAY_MAX_SUBSCRIBERS];
    unsigned sub_count;
    pthread_t thread;
    bool running;
    char path[108];
    uint64_t path_ino;                       /* the socket file we bound, so we unlink only our own */
    int self_sub_fd;                         /* subs[] entry that is the agent's own subscription (not handed over) */
    /* Counters, written by the relay thread only (read with __atomic loads). */
    uint64_t interrupts;                     /* eventfd reads that returned a count */
    uint64_t sent;                           /* bytes sent to subscribers */
    uint64_t coalesced;                      /* sends refused because the subscriber had unread bytes */
    uint64_t dropped;                        /* subscribers removed (hung up) */
};

/* "<dir>/wake-<bdf>.sock" into buf. -1 if it does not fit a sockaddr_un. Pure. */
int relay_socket_path(const char *dir, const char *bdf, char *buf, size_t cap);

/* Sends one wake-up byte to each of subs[0..*count), never blocking; removes (and closes) subscribers that
 * hung up, keeping the order of the rest. Adds to *sent and *coalesced. Returns how many it removed. */
unsigned relay_broadcast(int *subs, unsigned *count, uint64_t *sent, uint64_t *coalesced);

/* Removes (and closes) subscribers whose peer closed its end. Returns how many. */
unsigned relay_prune(int *subs, unsigned *count);

/* Creates dir (0700) and the socket, subscribes the caller through a socketpair (*self_fd, non-blocking)
 * and starts the relay thread on irq_fd (signals blocked in it). 0, or -1 with the reason in why. */
int relay_server_start(struct relay_server *s, const char *dir, const char *bdf, int irq_fd, int *self_fd, char *why, size_t why_cap);

/* Stops the thread, unlinks the socket (if it is still ours), closes every subscriber: they see EOF. */
void relay_server_stop(struct relay_server *s);

/* Driver update (src/update.h). pause: stops the thread, keeps the socket and the subscribers (they see
 * no EOF), so the fds can be handed to a new agent; resume: starts the thread again on them (0, or -1 with
 * why). adopt: a relay on a listen socket and subscribers another agent handed over (they become ours; the
 * socket file stays where it is); the caller is subscribed as with start. forget: closes our copies of
 * every fd without unlinking the socket (the new agent serves it now). */
void relay_server_pause(struct relay_server *s);
int relay_server_resume(struct relay_server *s, char *why, size_t why_cap);
int relay_server_adopt(struct relay_server *s, const char *path, uint64_t path_ino, int listen_fd, const int *subs, unsigned sub_count, int irq_fd,
                       int *self_fd, char *why, size_t why_cap);
void relay_server_forget(struct relay_server *s);

/* Connects to the relay of device bdf: *fd non-blocking. 0, or -1 with the reason in why (no agent relay,
 * the agent that served it is gone, ...). */
int relay_connect(const char *dir, const char *bdf, int *fd, char *why, size_t why_cap);

enum relay_drain {
    RELAY_WOKEN,    /* there were wake-up bytes (all read now) */
    RELAY_NOTHING,  /* nothing to read */
    RELAY_GONE,     /* EOF or an error: the relay is gone */
};

/* Reads every byte waiting on a subscriber's fd without blocking. */
enum relay_drain relay_drain(int fd);

#endif
