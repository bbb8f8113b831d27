/* update: the driver update in place (AGENT_UPDATE, docs/protocol.md §2.4.1, docs/decisions/driver-update.md).
 *
 * The old agent (A) gets AGENT_UPDATE naming a binary the host staged in the guest with AGENT_COPY. It opens
 * the file once (O_NOFOLLOW) and from then on uses only that fd: sha256 of it, `<it> --version` (fexecve) must
 * print "vmgmt-guest <version>", and the answer says so (OK, UPDATE_BAD_DIGEST, UPDATE_BAD_VERSION,
 * UPDATE_FAILED). Then the trial: A forks and fexecve()s the new binary as
 * `vmgmt-guest agent --takeover-fd N --installed-as PATH` (its child; PR_SET_PDEATHSIG), with one end of a
 * SOCK_SEQPACKET socketpair. A keeps serving its channel all along.
 *   1. N starts and says "READY <version>".            (N dies, or says nothing by report_in_ms: rolled back)
 *   2. A stops its stats loop, pauses its relay thread and sends its vfio fds (container, group, device, the
 *      MSI-X eventfds) and the relay's listen socket and subscribers with SCM_RIGHTS: one open vfio group,
 *      shared, never closed (closing the last fd would drop MSI-X). A keeps its copies, and its channel.
 *   3. N adopts them (update_adopt_wait), claims a channel of its own in agent mode and sends AGENT_HELLO
 *      with TAKEOVER; once the host answered it says "ATTACHED" and starts its stats loop.
 *   4. A serves what is left on its c2g ring, resets its channel (the host sends to N since its hello) and
 *      watches N for probation_ms. N dying then: A claims a channel again, resumes its relay and stats and
 *      reports UPDATE_ROLLED_BACK with AGENT_UPDATE_RESULT.
 *   5. After probation A installs the binary (from the checked fd) over the path the supervisor starts,
 *      keeping the old one as PATH.prev, closes its copies of the fds (no vfio ioctl, no unlink) and stays
 *      N's parent: it exits with N's status, so the supervisor (the test image's init loop) respawns then.
 * Rolled back at 1 or 3, the report goes on A's own channel; at 4, on a channel A claims again. Either way
 * the host does not depend on the old channel staying up: it learns of success from N's hello. */
#ifndef VG_UPDATE_H
#define VG_UPDATE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "inflight.h"
#include "relay.h"
#include "session.h"
#include "vmgmt_layout.h"

#define UPDATE_PATH_MAX 256u
#define UPDATE_READY_TIMEOUT_MS 10000u  /* N waits this long for A's fds */
#define UPDATE_VERSION_RUN_MS 20000u    /* `--version` of the new binary must answer within this (TCG guests are slow) */
#define UPDATE_POLL_NS 2000000ull       /* A's longest wait while a trial runs */

/* What a new agent is handed. */
struct update_adopt {
    char bdf[32];
    int container_fd, group_fd, device_fd;
    int irq_fd[2];
    unsigned irq_count;
    bool has_vfio;
    int listen_fd;                      /* -1: the old agent had no relay */
    char relay_path[108];
    uint64_t relay_ino;
    int subs[RELAY_MAX_SUBSCRIBERS];
    unsigned sub_count;
    uint64_t stop_ns;                   /* CLOCK_MONOTONIC: when the old agent paused its relay */
    uint32_t old_pid;
};

enum update_phase { UPDATE_IDLE, UPDATE_PENDING, UPDATE_TRIAL, UPDATE_HANDED };

struct update {
    enum update_phase phase;
    uint32_t request_id;
    uint8_t sha256[32];
    uint32_t report_in_ms, probation_ms;
    char version[VMGMT_AGENT_UPDATE_LIMIT_MAX_VERSION_BYTES + 1];
    char path[UPDATE_PATH_MAX];
    char installed_as[UPDATE_PATH_MAX]; /* the binary the supervisor starts: replaced at commit */
    int bin_fd;                         /* the checked binary */
    pid_t child;
    int sock;
    uint64_t deadline_ns;
    bool verbose, no_stats;
    char reason[320];                   /* why the last update was rolled back */
};

/* What the update needs of the agent running it. */
struct update_agent {
    struct session *s;
    struct inflight *table;
    uint32_t timeout_ms;
    void (*stop_stats)(void *arg);
    void (*start_stats)(void *arg);
    void *arg;
};

enum update_event { UPDATE_EV_NONE, UPDATE_EV_HANDED_OVER, UPDATE_EV_ROLLED_BACK };

/* This build's version (VMGMT_GUEST_VERSION, set by the Makefile). */
const char *update_version(void);

/* installed_as: --installed-as, or NULL for /proc/self/exe. */
void update_init(struct update *u, const char *installed_as, bool verbose, bool no_stats);

/* An AGENT_UPDATE the host sent (payload valid during the call only: copied). VMGMT_ST_OK: taken, answered
 * later by update_step; else the status to refuse it with and *why. */
int32_t update_take_request(struct update *u, const struct vmgmt_msg *msg, const uint8_t *payload, const char **why);

/* Something for update_step to do now (cheap: a wake-up condition). */
bool update_ready(const struct update *u);

/* The longest the agent may wait before calling update_step again. */
uint64_t update_wait_cap_ns(const struct update *u);

/* Checks and answers a taken request, runs the trial steps. HANDED_OVER: N reported in; the agent serves what
 * its ring holds, resets its channel and calls update_watch. ROLLED_BACK: reported, the agent goes on. */
enum update_event update_step(struct update *u, struct update_agent *ag);

/* After HANDED_OVER, the channel reset and released: probation, then either the commit (installs, closes A's
 * copies and waits for N as its parent: returns N's exit code in *exit_code and true) or the rollback (false:
 * the caller claims a channel again and calls update_resume). */
bool update_watch(struct update *u, struct update_agent *ag, int *exit_code);

/* After a rollback in update_watch (u->reason says why): relay and stats back. Then, once the agent serves a
 * channel again, update_report_rollback tells the host. */
void update_resume(struct update *u, struct update_agent *ag);
void update_report_rollback(struct update *u, struct update_agent *ag);

/* New agent: says READY to the old one on fd and receives what it hands over. */
int update_takeover_begin(int fd, struct update_adopt *ad);

/* New agent: the host answered its hello: tells the old agent, closes fd. */
void update_takeover_done(int fd);

/* session.c: the agent's wait set-up from handed-over fds. */
int update_adopt_wait(struct vmgmt_dev *dev, const struct update_adopt *ad);

/* AGENT_HELLO on the agent's channel (after every claim). */
int update_hello(struct inflight *t, uint32_t flags, uint32_t prev_pid, uint32_t gap_us);

#endif
