#include "update.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "pci.h"
#include "report.h"
#include "sha256.h"
#include "signals.h"

#ifndef VMGMT_GUEST_VERSION
#define VMGMT_GUEST_VERSION "0.0.0-unset"
#endif

/* The host reads the version out of a binary it is asked to send by this marker (agent-update.ts). */
__attribute__((used)) static const char update_version_marker[] = "@@VMGMT-GUEST-VERSION@@=" VMGMT_GUEST_VERSION;

#define UPDATE_MAGIC 0x55444e48u /* "HNDU" */
#define UPDATE_READY "READY "
#define UPDATE_ATTACHED "ATTACHED"
#define UPDATE_MAX_FDS (6u + RELAY_MAX_SUBSCRIBERS)

struct update_handover {
    uint32_t magic;
    uint32_t nfds;
    uint32_t has_vfio;
    uint32_t irq_count;
    uint32_t has_relay;
    uint32_t sub_count;
    uint32_t old_pid;
    uint32_t reserved;
    uint64_t stop_ns;
    uint64_t relay_ino;
    char bdf[32];
    char relay_path[108];
};

static struct inflight_answer update_answer_buf; /* the agent is single-threaded where this is used */

const char *update_version(void)
{
    return update_version_marker + strlen("@@VMGMT-GUEST-VERSION@@=");
}

void update_init(struct update *u, const char *installed_as, bool verbose, bool no_stats)
{
    memset(u, 0, sizeof(*u));
    u->bin_fd = u->sock = -1;
    u->verbose = verbose;
    u->no_stats = no_stats;
    if (installed_as) {
        snprintf(u->installed_as, sizeof(u->installed_as), "%s", installed_as);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", u->installed_as, sizeof(u->installed_as) - 1);
    u->installed_as[n > 0 ? n : 0] = 0;
    char *deleted = strstr(u->installed_as, " (deleted)");
    if (deleted)
        *deleted = 0;
}

int32_t update_take_request(struct update *u, const struct vmgmt_msg *msg, const uint8_t *payload, const char **why)
{
    if (u->phase != UPDATE_IDLE) {
        *why = "an update is in progress already";
        return VMGMT_ST_UPDATE_BUSY;
    }
    struct vmgmt_agent_update req;
    if (msg->length < sizeof(req)) {
        *why = "AGENT_UPDATE shorter than struct vmgmt_agent_update";
        return VMGMT_ST_BAD_LENGTH;
    }
    memcpy(&req, payload, sizeof(req));
    if (req.version_len == 0 || req.version_len > VMGMT_AGENT_UPDATE_LIMIT_MAX_VERSION_BYTES || req.path_len == 0 || req.path_len >= UPDATE_PATH_MAX ||
        msg->length != sizeof(req) + req.version_len + req.path_len) {
        *why = "AGENT_UPDATE version_len/path_len out of range or not what the length says";
        return VMGMT_ST_BAD_LENGTH;
    }
    if (req.report_in_ms == 0 || req.report_in_ms > VMGMT_AGENT_UPDATE_LIMIT_MAX_DEADLINE_MS || req.probation_ms > VMGMT_AGENT_UPDATE_LIMIT_MAX_DEADLINE_MS) {
        *why = "AGENT_UPDATE report_in_ms/probation_ms out of range";
        return VMGMT_ST_UPDATE_FAILED;
    }
    memcpy(u->version, payload + sizeof(req), req.version_len);
    u->version[req.version_len] = 0;
    memcpy(u->path, payload + sizeof(req) + req.version_len, req.path_len);
    u->path[req.path_len] = 0;
    if (strlen(u->version) != req.version_len || strlen(u->path) != req.path_len || u->path[0] != '/' || strstr(u->path, "/../") ||
        strchr(u->version, ' ') || strchr(u->version, '\n')) {
        *why = "AGENT_UPDATE version or path has a NUL, a space or a newline, or the path is not absolute";
        return VMGMT_ST_UPDATE_FAILED;
    }
    memcpy(u->sha256, req.sha256, sizeof(u->sha256));
    u->report_in_ms = req.report_in_ms;
    u->probation_ms = req.probation_ms;
    u->request_id = msg->request_id;
    u->phase = UPDATE_PENDING;
    return VMGMT_ST_OK;
}

static bool update_child_gone(const struct update *u)
{
    siginfo_t info = { 0 };
    return u->child > 0 && waitid(P_PID, (id_t)u->child, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == u->child;
}

static bool update_sock_readable(const struct update *u)
{
    struct pollfd p = { .fd = u->sock, .events = POLLIN };
    return u->sock >= 0 && poll(&p, 1, 0) == 1;
}

bool update_ready(const struct update *u)
{
    if (u->phase == UPDATE_PENDING)
        return true;
    if (u->phase != UPDATE_TRIAL && u->phase != UPDATE_HANDED)
        return false;
    return clock_now_ns() >= u->deadline_ns || update_child_gone(u) || update_sock_readable(u);
}

uint64_t update_wait_cap_ns(const struct update *u)
{
    return u->phase == UPDATE_TRIAL || u->phase == UPDATE_HANDED ? UPDATE_POLL_NS : UINT64_MAX;
}

static void update_answer(struct update_agent *ag, uint32_t request_id, int32_t status)
{
    struct vmgmt_msg msg = { .type = (uint16_t)(VMGMT_MSG_AGENT_UPDATE | VMGMT_MSG_RESPONSE_BIT), .request_id = request_id, .status = status };
    enum channel_io io = channel_send(&ag->s->ch, &msg, NULL, clock_now_ns() + (uint64_t)ag->timeout_ms * 1000000ull);
    if (io != CHANNEL_IO_OK)
        channel_report_io(&ag->s->ch, io, ag->timeout_ms, "answering AGENT_UPDATE");
}

/* AGENT_UPDATE_RESULT on the channel the agent serves now. */
static void update_report(struct update_agent *ag, int32_t status, pid_t new_pid, const char *reason)
{
    uint8_t buf[sizeof(struct vmgmt_agent_update_result) + VMGMT_AGENT_UPDATE_LIMIT_MAX_REASON_BYTES];
    size_t len = strlen(reason);
    if (len > VMGMT_AGENT_UPDATE_LIMIT_MAX_REASON_BYTES)
        len = VMGMT_AGENT_UPDATE_LIMIT_MAX_REASON_BYTES;
    struct vmgmt_agent_update_result r = { .status = status, .new_pid = (uint32_t)(new_pid > 0 ? new_pid : 0), .reason_len = (uint32_t)len };
    memcpy(buf, &r, sizeof(r));
    memcpy(buf + sizeof(r), reason, len);
    int rc = inflight_call(ag->table, VMGMT_MSG_AGENT_UPDATE_RESULT, buf, (uint32_t)(sizeof(r) + len), &update_answer_buf, "AGENT_UPDATE_RESULT");
    if (rc == REPORT_EXIT_OK && update_answer_buf.status != VMGMT_ST_OK)
        fprintf(stderr, "agent: the host answered AGENT_UPDATE_RESULT with status %d: %s\n", update_answer_buf.status,
                vmgmt_status_text(update_answer_buf.status));
}

/* Runs the checked binary with --version (fexecve: exactly the bytes hashed); its first line into out. */
static int update_run_version(int bin_fd, char *out, size_t cap, char *why, size_t why_cap)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(why, why_cap, "pipe() failed: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_cap, "fork() failed: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        char *argv[] = { "vmgmt-guest", "--version", NULL };
        char *envp[] = { "PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL };
        fexecve(bin_fd, argv, envp);
        _exit(127);
    }
    close(pipefd[1]);
    size_t used = 0;
    uint64_t deadline = clock_now_ns() + (uint64_t)UPDATE_VERSION_RUN_MS * 1000000ull;
    for (;;) {
        uint64_t now = clock_now_ns();
        if (now >= deadline)
            break;
        struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
        int n = poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ssize_t got = read(pipefd[0], out + used, cap - 1 - used);
        if (got <= 0 || (used += (size_t)got) >= cap - 1)
            break;
    }
    close(pipefd[0]);
    out[used] = 0;
    /* EOF on the pipe comes a moment before the child is a zombie: wait for it up to the deadline. */
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && clock_now_ns() < deadline) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 1000000L };
        nanosleep(&ts, NULL);
    }
    if (r != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        snprintf(why, why_cap, "`--version` did not finish within %u ms", UPDATE_VERSION_RUN_MS);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, why_cap, "`--version` %s %d", WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return -1;
    }
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = 0;
    return 0;
}

/* The checks before any trial. Returns the status to answer with. */
static int32_t update_check(struct update *u, char *why, size_t why_cap)
{
    int fd = open(u->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_cap, "cannot open the staged binary %.200s: %s", u->path, strerror(errno));
        return VMGMT_ST_UPDATE_FAILED;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > VMGMT_AGENT_UPDATE_LIMIT_MAX_BINARY_BYTES) {
        snprintf(why, why_cap, "the staged binary %.200s is not a regular file of 1..%u bytes", u->path, VMGMT_AGENT_UPDATE_LIMIT_MAX_BINARY_BYTES);
        close(fd);
        return VMGMT_ST_UPDATE_FAILED;
    }
    uint8_t digest[SHA256_BYTES];
    int err = sha256_fd(fd, digest);
    if (err) {
        snprintf(why, why_cap, "reading %.200s failed: %s", u->path, strerror(-err));
        close(fd);
        return VMGMT_ST_UPDATE_FAILED;
    }
    if (memcmp(digest, u->sha256, SHA256_BYTES) != 0) {
        char got[2 * SHA256_BYTES + 1], want[2 * SHA256_BYTES + 1];
        sha256_hex(digest, got);
        sha256_hex(u->sha256, want);
        snprintf(why, why_cap, "sha256 of %.160s is %.16s..., the host sent %.16s...", u->path, got, want);
        close(fd);
        return VMGMT_ST_UPDATE_BAD_DIGEST;
    }
    if (fchmod(fd, 0700) != 0) {
        snprintf(why, why_cap, "cannot make %.200s executable: %s", u->path, strerror(errno));
        close(fd);
        return VMGMT_ST_UPDATE_FAILED;
    }
    char line[256], expect[128], run_why[160];
    if (update_run_version(fd, line, sizeof(line), run_why, sizeof(run_why)) != 0) {
        snprintf(why, why_cap, "the new binary did not report its version: %s", run_why);
        close(fd);
        return VMGMT_ST_UPDATE_BAD_VERSION;
    }
    snprintf(expect, sizeof(expect), "vmgmt-guest %s", u->version);
    if (strcmp(line, expect) != 0) {
        snprintf(why, why_cap, "the new binary reports \"%.100s\", the host expects \"%s\"", line, expect);
        close(fd);
        return VMGMT_ST_UPDATE_BAD_VERSION;
    }
    u->bin_fd = fd;
    return VMGMT_ST_OK;
}

static int32_t update_start_trial(struct update *u, char *why, size_t why_cap)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(why, why_cap, "socketpair() failed: %s", strerror(errno));
        return VMGMT_ST_UPDATE_FAILED;
    }
    pid_t parent = getpid();
    char fdtext[16];
    snprintf(fdtext, sizeof(fdtext), "%d", pair[1]);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_cap, "fork() failed: %s", strerror(errno));
        close(pair[0]);
        close(pair[1]);
        return VMGMT_ST_UPDATE_FAILED;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        close(pair[0]);
        int flags = fcntl(pair[1], F_GETFD);
        fcntl(pair[1], F_SETFD, flags & ~FD_CLOEXEC);
        char *argv[10];
        int n = 0;
        argv[n++] = "vmgmt-guest";
        argv[n++] = "agent";
        argv[n++] = "--takeover-fd";
        argv[n++] = fdtext;
        argv[n++] = "--installed-as";
        argv[n++] = u->installed_as;
        if (u->verbose)
            argv[n++] = "-v";
        if (u->no_stats)
            argv[n++] = "--no-stats";
        argv[n] = NULL;
        char *envp[] = { "PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL };
        signal(SIGHUP, SIG_IGN);
        fexecve(u->bin_fd, argv, envp);
        fprintf(stderr, "agent: cannot start the new binary: %s\n", strerror(errno));
        _exit(127);
    }
    close(pair[1]);
    u->sock = pair[0];
    u->child = pid;
    u->deadline_ns = clock_now_ns() + (uint64_t)u->report_in_ms * 1000000ull;
    u->phase = UPDATE_TRIAL;
    fprintf(stderr, "agent: update to %s: %s checked (sha256, --version); started it as pid %d, it has %u ms to report in\n", u->version, u->path,
            (int)pid, u->report_in_ms);
    return VMGMT_ST_OK;
}

/* Ends an update that did not go through: the new process gone, the staged file kept for a look. */
static void update_abandon(struct update *u)
{
    if (u->child > 0) {
        kill(u->child, SIGKILL);
        waitpid(u->child, NULL, 0);
    }
    if (u->sock >= 0)
        close(u->sock);
    if (u->bin_fd >= 0)
        close(u->bin_fd);
    u->sock = u->bin_fd = -1;
    u->child = 0;
    u->phase = UPDATE_IDLE;
}

static void update_exit_words(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
}

/* Sends the fds with the handover header. */
static int update_send_fds(struct update *u, struct update_agent *ag, char *why, size_t why_cap)
{
    struct vmgmt_dev *dev = &ag->s->dev;
    struct update_handover h = { .magic = UPDATE_MAGIC, .old_pid = (uint32_t)getpid() };
    snprintf(h.bdf, sizeof(h.bdf), "%s", dev->bdf);
    int fds[UPDATE_MAX_FDS];
    unsigned n = 0;
    if (dev->vfio.device_fd >= 0) {
        h.has_vfio = 1;
        h.irq_count = dev->vfio.irq_count;
        fds[n++] = dev->vfio.container_fd;
        fds[n++] = dev->vfio.group_fd;
        fds[n++] = dev->vfio.device_fd;
        for (unsigned i = 0; i < dev->vfio.irq_count && i < 2; i++)
            fds[n++] = dev->vfio.irq_fd[i];
    }
    struct relay_server *r = dev->relay.server;
    if (r) {
        relay_server_pause(r);
        h.has_relay = 1;
        h.relay_ino = r->path_ino;
        snprintf(h.relay_path, sizeof(h.relay_path), "%s", r->path);
        fds[n++] = r->listen_fd;
        for (unsigned i = 0; i < r->sub_count; i++) {
            if (r->subs[i] == r->self_sub_fd)
                continue;
            fds[n++] = r->subs[i];
            h.sub_count++;
        }
    }
    h.stop_ns = clock_now_ns();
    h.nfds = n;
    struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
    union {
        char buf[CMSG_SPACE(sizeof(int) * UPDATE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    if (sendmsg(u->sock, &m, MSG_NOSIGNAL) != (ssize_t)sizeof(h)) {
        snprintf(why, why_cap, "handing the fds to the new agent failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The old agent takes up what it paused: relay and stats. */
static void update_restore_self(struct update_agent *ag)
{
    struct relay_server *r = ag->s->dev.relay.server;
    char why[160];
    if (r && relay_server_resume(r, why, sizeof(why)) != 0)
        fprintf(stderr, "agent: cannot resume the wake-up relay: %s; other commands poll\n", why);
    ag->start_stats(ag->arg);
}

static enum update_event update_rollback(struct update *u, struct update_agent *ag, bool paused, const char *reason)
{
    fprintf(stderr, "agent: update to %s rolled back: %s; this agent (%s) keeps serving\n", u->version, reason, update_version());
    pid_t child = u->child;
    update_abandon(u);
    if (paused)
        update_restore_self(ag);
    update_report(ag, VMGMT_ST_UPDATE_ROLLED_BACK, child, reason);
    return UPDATE_EV_ROLLED_BACK;
}

enum update_event update_step(struct update *u, struct update_agent *ag)
{
    char why[320];
    if (u->phase == UPDATE_PENDING) {
        int32_t status = update_check(u, why, sizeof(why));
        if (status == VMGMT_ST_OK)
            status = update_start_trial(u, why, sizeof(why));
        if (status != VMGMT_ST_OK) {
            fprintf(stderr, "agent: refused the update to %s: %s (status %d: %s)\n", u->version, why, status, vmgmt_status_text(status));
            update_abandon(u);
        }
        update_answer(ag, u->request_id, status);
        return UPDATE_EV_NONE;
    }
    if (u->phase != UPDATE_TRIAL && u->phase != UPDATE_HANDED)
        return UPDATE_EV_NONE;
    bool paused = u->phase == UPDATE_HANDED;
    int status;
    pid_t gone = waitpid(u->child, &status, WNOHANG);
    if (gone == u->child) {
        char words[96];
        update_exit_words(status, words, sizeof(words));
        u->child = 0;
        snprintf(why, sizeof(why), "the new agent %s %s", words, paused ? "after it got the fds, before the host had its hello" : "before it reported in");
        return update_rollback(u, ag, paused, why);
    }
    char msg[128];
    ssize_t n = recv(u->sock, msg, sizeof(msg) - 1, MSG_DONTWAIT);
    if (n > 0) {
        msg[n] = 0;
        if (!paused && strncmp(msg, UPDATE_READY, strlen(UPDATE_READY)) == 0) {
            if (strcmp(msg + strlen(UPDATE_READY), u->version) != 0) {
                snprintf(why, sizeof(why), "the new agent says it is version %.64s, not %s", msg + strlen(UPDATE_READY), u->version);
                return update_rollback(u, ag, false, why);
            }
            ag->stop_stats(ag->arg);
            if (update_send_fds(u, ag, why, sizeof(why)) != 0)
                return update_rollback(u, ag, true, why);
            u->phase = UPDATE_HANDED;
            report_verbose(u->verbose, "agent: the new agent is ready; handed it vfio and the relay");
            return UPDATE_EV_NONE;
        }
        if (paused && strcmp(msg, UPDATE_ATTACHED) == 0) {
            fprintf(stderr, "agent: the new agent %s (pid %d) reported in; handing over this channel, on probation for %u ms\n", u->version, (int)u->child,
                    u->probation_ms);
            return UPDATE_EV_HANDED_OVER;
        }
        snprintf(why, sizeof(why), "the new agent sent \"%.40s\" out of turn", msg);
        return update_rollback(u, ag, paused, why);
    }
    if (n == 0) {
        /* EOF: the new agent is most likely dying; say how it ended if it does so within a second. */
        pid_t r = 0;
        for (int i = 0; i < 200 && (r = waitpid(u->child, &status, WNOHANG)) == 0; i++) {
            struct timespec ts = { .tv_sec = 0, .tv_nsec = 5000000L };
            nanosleep(&ts, NULL);
        }
        if (r == u->child) {
            char words[96];
            update_exit_words(status, words, sizeof(words));
            u->child = 0;
            snprintf(why, sizeof(why), "the new agent %s %s", words, paused ? "after it got the fds, before the host had its hello" : "before it reported in");
        } else {
            snprintf(why, sizeof(why), "the new agent closed the handover socket before it reported in");
        }
        return update_rollback(u, ag, paused, why);
    }
    if (clock_now_ns() >= u->deadline_ns) {
        snprintf(why, sizeof(why), "the new agent did not report in within %u ms", u->report_in_ms);
        return update_rollback(u, ag, paused, why);
    }
    return UPDATE_EV_NONE;
}

/* Copies the checked binary over installed_as (through a temp file and rename), the old one kept as .prev. */
static int update_install(struct update *u, char *why, size_t why_cap)
{
    char tmp[UPDATE_PATH_MAX + 16], prev[UPDATE_PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.update", u->installed_as);
    snprintf(prev, sizeof(prev), "%s.prev", u->installed_as);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (out < 0) {
        snprintf(why, why_cap, "cannot create %.200s: %s", tmp, strerror(errno));
        return -1;
    }
    char buf[65536];
    off_t at = 0;
    for (;;) {
        ssize_t got = pread(u->bin_fd, buf, sizeof(buf), at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || write(out, buf, (size_t)got) != got) {
            if (got == 0)
                break;
            snprintf(why, why_cap, "copying the new binary to %.200s failed: %s", tmp, strerror(errno));
            close(out);
            unlink(tmp);
            return -1;
        }
        at += got;
    }
    if (fsync(out) != 0 || close(out) != 0) {
        snprintf(why, why_cap, "writing %.200s failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    unlink(prev);
    if (link(u->installed_as, prev) != 0 && errno != ENOENT)
        fprintf(stderr, "agent: could not keep the old binary as %s: %s\n", prev, strerror(errno));
    if (rename(tmp, u->installed_as) != 0) {
        snprintf(why, why_cap, "cannot rename %.120s to %.120s: %s", tmp, u->installed_as, strerror(errno));
        unlink(tmp);
        return -1;
    }
    struct stat staged, checked;
    if (stat(u->path, &staged) == 0 && fstat(u->bin_fd, &checked) == 0 && staged.st_ino == checked.st_ino && staged.st_dev == checked.st_dev)
        unlink(u->path);
    return 0;
}

/* The old agent's copies of what it handed over, closed without touching the device: a vfio ioctl would
 * take MSI-X from the new agent, an unlink its relay socket. */
static void update_forget_device(struct vmgmt_dev *dev)
{
    if (dev->relay.server) {
        relay_server_forget(dev->relay.server);
        free(dev->relay.server);
        dev->relay.server = NULL;
    }
    if (dev->relay.fd >= 0)
        close(dev->relay.fd);
    dev->relay.fd = -1;
    dev->vfio.irq_count = 0;
    int *fds[] = { &dev->vfio.irq_fd[0], &dev->vfio.irq_fd[1], &dev->vfio.device_fd, &dev->vfio.container_fd, &dev->vfio.group_fd };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    pci_unmap(dev);
}

/* The committed old agent: N's parent until N exits, forwarding SIGTERM/SIGINT. */
static int update_keep(pid_t child)
{
    bool forwarded = false;
    for (;;) {
        int status;
        pid_t r = waitpid(child, &status, 0);
        if (r == child) {
            char words[96];
            update_exit_words(status, words, sizeof(words));
            fprintf(stderr, "agent: the agent (pid %d) %s; exiting so the supervisor starts it again\n", (int)child, words);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (r < 0 && errno != EINTR)
            return REPORT_EXIT_SYSTEM;
        int sig = signals_stop_requested();
        if (sig && !forwarded) {
            kill(child, sig);
            forwarded = true;
        }
    }
}

bool update_watch(struct update *u, struct update_agent *ag, int *exit_code)
{
    uint64_t end = clock_now_ns() + (uint64_t)u->probation_ms * 1000000ull;
    char why[320];
    for (;;) {
        int status;
        pid_t gone = waitpid(u->child, &status, WNOHANG);
        if (gone == u->child) {
            char words[96];
            update_exit_words(status, words, sizeof(words));
            snprintf(u->reason, sizeof(u->reason), "the new agent %s %s within its %u ms probation", u->version, words, u->probation_ms);
            u->child = 0;
            return false;
        }
        if (signals_stop_requested()) {
            kill(u->child, signals_stop_requested());
            *exit_code = update_keep(u->child);
            return true;
        }
        uint64_t now = clock_now_ns();
        if (now >= end)
            break;
        uint64_t left = end - now;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(left < 20000000ull ? left : 20000000ull) };
        nanosleep(&ts, NULL);
    }
    if (update_install(u, why, sizeof(why)) != 0)
        fprintf(stderr, "agent: the update to %s serves, but installing it failed: %s; the supervisor would start the old binary again\n", u->version, why);
    else
        fprintf(stderr, "agent: update to %s committed: installed as %s (the old binary kept as %s.prev)\n", u->version, u->installed_as, u->installed_as);
    close(u->sock);
    close(u->bin_fd);
    u->sock = u->bin_fd = -1;
    update_forget_device(&ag->s->dev);
    *exit_code = update_keep(u->child);
    return true;
}

void update_resume(struct update *u, struct update_agent *ag)
{
    fprintf(stderr, "agent: update to %s rolled back: %s; this agent (%s) serves again\n", u->version, u->reason, update_version());
    update_abandon(u);
    update_restore_self(ag);
}

void update_report_rollback(struct update *u, struct update_agent *ag)
{
    update_report(ag, VMGMT_ST_UPDATE_ROLLED_BACK, 0, u->reason);
}

int update_takeover_begin(int fd, struct update_adopt *ad)
{
    memset(ad, 0, sizeof(*ad));
    ad->container_fd = ad->group_fd = ad->device_fd = ad->irq_fd[0] = ad->irq_fd[1] = ad->listen_fd = -1;
    char ready[96];
    int len = snprintf(ready, sizeof(ready), UPDATE_READY "%s", update_version());
    if (send(fd, ready, (size_t)len, MSG_NOSIGNAL) != len)
        return report_error(REPORT_EXIT_SYSTEM, "agent: cannot tell the old agent it is ready: %s", strerror(errno));
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n;
    do
        n = poll(&p, 1, (int)UPDATE_READY_TIMEOUT_MS);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        return report_error(REPORT_EXIT_TIMEOUT, "agent: the old agent did not hand over within %u ms", UPDATE_READY_TIMEOUT_MS);
    struct update_handover h;
    struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
    union {
        char buf[CMSG_SPACE(sizeof(int) * UPDATE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    ssize_t got = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    int fds[UPDATE_MAX_FDS];
    unsigned nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < k && nfds < UPDATE_MAX_FDS; i++)
            memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    unsigned want = h.has_vfio ? 3u + h.irq_count : 0u;
    want += h.has_relay ? 1u + h.sub_count : 0u;
    if (got != (ssize_t)sizeof(h) || h.magic != UPDATE_MAGIC || (m.msg_flags & MSG_CTRUNC) || h.nfds != nfds || nfds != want || h.irq_count > 2 ||
        h.sub_count >= RELAY_MAX_SUBSCRIBERS) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        return report_error(REPORT_EXIT_PROTOCOL, "agent: the old agent's handover is malformed (%zd bytes, %u fds)", got, nfds);
    }
    h.bdf[sizeof(h.bdf) - 1] = 0;
    h.relay_path[sizeof(h.relay_path) - 1] = 0;
    snprintf(ad->bdf, sizeof(ad->bdf), "%s", h.bdf);
    unsigned at = 0;
    if (h.has_vfio) {
        ad->has_vfio = true;
        ad->container_fd = fds[at++];
        ad->group_fd = fds[at++];
        ad->device_fd = fds[at++];
        ad->irq_count = h.irq_count;
        for (unsigned i = 0; i < h.irq_count; i++)
            ad->irq_fd[i] = fds[at++];
    }
    if (h.has_relay) {
        ad->listen_fd = fds[at++];
        snprintf(ad->relay_path, sizeof(ad->relay_path), "%s", h.relay_path);
        ad->relay_ino = h.relay_ino;
        ad->sub_count = h.sub_count;
        for (unsigned i = 0; i < h.sub_count; i++)
            ad->subs[i] = fds[at++];
    }
    ad->stop_ns = h.stop_ns;
    ad->old_pid = h.old_pid;
    return REPORT_EXIT_OK;
}

void update_takeover_done(int fd)
{
    if (send(fd, UPDATE_ATTACHED, strlen(UPDATE_ATTACHED), MSG_NOSIGNAL) < 0)
        fprintf(stderr, "agent: cannot tell the old agent it reported in: %s\n", strerror(errno));
    close(fd);
}

int update_adopt_wait(struct vmgmt_dev *dev, const struct update_adopt *ad)
{
    if (!ad->has_vfio) {
        snprintf(dev->wait_why, sizeof(dev->wait_why), "the old agent handed over no vfio (it polled)");
        return REPORT_EXIT_OK;
    }
    dev->vfio.container_fd = ad->container_fd;
    dev->vfio.group_fd = ad->group_fd;
    dev->vfio.device_fd = ad->device_fd;
    dev->vfio.irq_fd[0] = ad->irq_fd[0];
    dev->vfio.irq_fd[1] = ad->irq_fd[1];
    dev->vfio.irq_count = ad->irq_count;
    dev->wait = DEV_WAIT_MSIX;
    if (ad->listen_fd < 0)
        return REPORT_EXIT_OK;
    char why[256];
    struct relay_server *server = calloc(1, sizeof(*server));
    int self_fd;
    if (!server || relay_server_adopt(server, ad->relay_path, ad->relay_ino, ad->listen_fd, ad->subs, ad->sub_count, dev->vfio.irq_fd[VMGMT_VECTOR_RING],
                                      &self_fd, why, sizeof(why)) != 0) {
        free(server);
        return report_error(REPORT_EXIT_SYSTEM, "agent: cannot take over the wake-up relay: %s", server ? why : "out of memory");
    }
    dev->relay.server = server;
    dev->relay.fd = self_fd;
    return REPORT_EXIT_OK;
}

int update_hello(struct inflight *t, uint32_t flags, uint32_t prev_pid, uint32_t gap_us)
{
    const char *v = update_version();
    size_t vlen = strlen(v);
    uint8_t buf[sizeof(struct vmgmt_agent_hello) + VMGMT_AGENT_UPDATE_LIMIT_MAX_VERSION_BYTES];
    if (vlen > VMGMT_AGENT_UPDATE_LIMIT_MAX_VERSION_BYTES)
        vlen = VMGMT_AGENT_UPDATE_LIMIT_MAX_VERSION_BYTES;
    struct vmgmt_agent_hello h = { .pid = (uint32_t)getpid(), .flags = flags, .prev_pid = prev_pid, .gap_us = gap_us, .version_len = (uint32_t)vlen };
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), v, vlen);
    int rc = inflight_call(t, VMGMT_MSG_AGENT_HELLO, buf, (uint32_t)(sizeof(h) + vlen), &update_answer_buf, "AGENT_HELLO");
    if (rc)
        return rc;
    if (update_answer_buf.status != VMGMT_ST_OK)
        return report_error(REPORT_EXIT_PROTOCOL, "agent: the host refused AGENT_HELLO (version %s): status %d: %s", v, update_answer_buf.status,
                            vmgmt_status_text(update_answer_buf.status));
    return REPORT_EXIT_OK;
}
