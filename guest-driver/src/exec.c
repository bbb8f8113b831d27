#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "fileop.h"
#include "report.h"
#include "session.h"
#include "slice.h"

#define EXEC_OUT_BUFFERS 4u
#define EXEC_OUT_BYTES (256u * 1024u)
#define EXEC_IN_BYTES (64u * 1024u)
#define EXEC_POLL_MIN_NS 20000ull
#define EXEC_POLL_MAX_NS 2000000ull
#define EXEC_TIMEOUT_MS 30000u   /* per send: the core takes a message at once unless the ring is full */
#define EXEC_MAX_OUT 8u           /* requests of ours outstanding: outputs, one input, the exit */
#define EXEC_READY_FD 3           /* the exec process says on it whether it holds its channel (one byte: 0 or an exit code) */
#define EXEC_READY_WAIT_MS 5000   /* how long the agent's middle process waits for that byte */

struct exec_req {
    bool used;
    uint16_t type;
    uint32_t id;
    uint32_t tag;
};

struct exec_proc {
    struct session s;
    struct fileop f;
    uint32_t out_bytes, in_off;
    struct exec_req req[EXEC_MAX_OUT];
    uint32_t next_id;
    bool out_busy[EXEC_OUT_BUFFERS];
    uint32_t outputs_out;      /* EXEC_OUTPUT unanswered */
    int out_fd[2];             /* stdout, stderr (a pty: its master as stdout, no stderr) */
    int in_fd;                 /* the command's stdin (pipe write end, or the pty master); -1 once closed */
    bool tty;
    bool input_out;            /* an EXEC_INPUT unanswered */
    bool input_eof;
    uint32_t pending_len, pending_done;  /* stdin bytes from the last answer, at in_off */
    pid_t child;
    bool reaped;
    int status;
    bool exit_answered;
    uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
};

static int exec_send(struct exec_proc *e, uint16_t type, const void *payload, uint32_t length, uint32_t tag)
{
    struct exec_req *r = NULL;
    for (uint32_t i = 0; i < EXEC_MAX_OUT && !r; i++)
        if (!e->req[i].used)
            r = &e->req[i];
    if (!r)
        return report_error(REPORT_EXIT_SYSTEM, "exec: internal error: %u requests outstanding", EXEC_MAX_OUT);
    uint32_t id = e->next_id++;
    if (e->next_id == 0)
        e->next_id = 1;
    struct vmgmt_msg msg = { .type = type, .length = length, .request_id = id };
    enum channel_io io = channel_send(&e->s.ch, &msg, payload, clock_now_ns() + (uint64_t)EXEC_TIMEOUT_MS * 1000000ull);
    if (io != CHANNEL_IO_OK)
        return channel_report_io(&e->s.ch, io, EXEC_TIMEOUT_MS, vmgmt_msg_type_name(type));
    *r = (struct exec_req){ .used = true, .type = type, .id = id, .tag = tag };
    return REPORT_EXIT_OK;
}

static void exec_push(struct exec_proc *e, const struct vmgmt_msg *msg)
{
    if (msg->type == VMGMT_MSG_EXEC_SIGNAL && msg->length == sizeof(struct vmgmt_exec_signal)) {
        struct vmgmt_exec_signal sig;
        memcpy(&sig, e->payload, sizeof(sig));
        if (sig.signal >= 1 && sig.signal < 65 && e->child > 0 && !e->reaped)
            kill(-e->child, (int)sig.signal);
    } else if (msg->type == VMGMT_MSG_EXEC_RESIZE && msg->length == sizeof(struct vmgmt_exec_resize) && e->tty && e->in_fd >= 0) {
        struct vmgmt_exec_resize rs;
        memcpy(&rs, e->payload, sizeof(rs));
        struct winsize ws = { .ws_row = rs.rows, .ws_col = rs.cols };
        ioctl(e->in_fd, TIOCSWINSZ, &ws);
    } else {
        fprintf(stderr, "vmgmt-guest exec: ignored a host message of type 0x%04x (%u bytes)\n", msg->type, msg->length);
    }
}

/* One message from c2g (the caller saw one waiting): an answer to one of ours, or a push. */
static int exec_take(struct exec_proc *e)
{
    struct vmgmt_msg msg;
    enum channel_io io = channel_recv(&e->s.ch, &msg, e->payload, sizeof(e->payload), clock_now_ns());
    if (io != CHANNEL_IO_OK)
        return channel_report_io(&e->s.ch, io, 0, "receiving from the host");
    if (!(msg.type & VMGMT_MSG_RESPONSE_BIT)) {
        exec_push(e, &msg);
        return REPORT_EXIT_OK;
    }
    struct exec_req *r = NULL;
    for (uint32_t i = 0; i < EXEC_MAX_OUT && !r; i++)
        if (e->req[i].used && e->req[i].id == msg.request_id && (uint16_t)(e->req[i].type | VMGMT_MSG_RESPONSE_BIT) == msg.type)
            r = &e->req[i];
    if (!r)
        return report_error(REPORT_EXIT_PROTOCOL, "exec: protocol violation by the core: an answer (type 0x%04x, id %u) matches no request of ours", msg.type, msg.request_id);
    r->used = false;
    uint16_t type = r->type;
    if (type == VMGMT_MSG_EXEC_OUTPUT) {
        e->out_busy[r->tag] = false;
        e->outputs_out--;
        if (msg.status != VMGMT_ST_OK)
            return report_error(REPORT_EXIT_PROTOCOL, "exec: the host refused output: %s (status %d)", vmgmt_status_text(msg.status), msg.status);
    } else if (type == VMGMT_MSG_EXEC_INPUT) {
        e->input_out = false;
        struct vmgmt_exec_io_result res = { 0 };
        if (msg.status != VMGMT_ST_OK || msg.length < sizeof(res)) {
            e->input_eof = true;
            return REPORT_EXIT_OK;
        }
        memcpy(&res, e->payload, sizeof(res));
        if (res.bytes > EXEC_IN_BYTES)
            return report_error(REPORT_EXIT_PROTOCOL, "exec: the host gave %u stdin bytes for a %u-byte buffer", res.bytes, EXEC_IN_BYTES);
        e->pending_len = res.bytes;
        e->pending_done = 0;
        if (res.eof)
            e->input_eof = true;
    } else if (type == VMGMT_MSG_EXEC_EXIT) {
        e->exit_answered = true;
    }
    return REPORT_EXIT_OK;
}

static void exec_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The command line the host put at offset 0 of the slice: cwd, argv, env, each NUL-terminated. */
static int exec_parse_spec(struct exec_proc *e, const struct vmgmt_exec_spec *spec, char **buf, char ***argv, char ***envp, char **cwd)
{
    if (spec->spec_bytes == 0 || spec->spec_bytes > VMGMT_EXEC_LIMIT_MAX_SPEC_BYTES || !slice_contains(&e->f.slice, 0, spec->spec_bytes) || spec->argc == 0 ||
        spec->argc > VMGMT_EXEC_LIMIT_MAX_ARGS || spec->envc > VMGMT_EXEC_LIMIT_MAX_ARGS)
        return report_error(REPORT_EXIT_PROTOCOL, "exec: the host's command line is out of bounds (%u bytes, %u args, %u env)", spec->spec_bytes, spec->argc, spec->envc);
    *buf = malloc(spec->spec_bytes + 1);
    *argv = calloc(spec->argc + 1, sizeof(char *));
    *envp = calloc(spec->envc + 1, sizeof(char *));
    if (!*buf || !*argv || !*envp)
        return report_error(REPORT_EXIT_SYSTEM, "exec: out of memory for a %u-byte command line", spec->spec_bytes);
    slice_copy_out(&e->f.slice, 0, spec->spec_bytes, *buf); /* copied out first, then checked */
    (*buf)[spec->spec_bytes] = '\0';
    char *p = *buf, *end = *buf + spec->spec_bytes;
    uint32_t want = 1 + spec->argc + spec->envc;
    for (uint32_t i = 0; i < want; i++) {
        char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul || p >= end)
            return report_error(REPORT_EXIT_PROTOCOL, "exec: the host's command line has fewer than %u NUL-terminated strings", want);
        if (i == 0)
            *cwd = p;
        else if (i <= spec->argc)
            (*argv)[i - 1] = p;
        else
            (*envp)[i - 1 - spec->argc] = p;
        p = nul + 1;
    }
    return REPORT_EXIT_OK;
}

static int exec_start_command(struct exec_proc *e, const struct vmgmt_exec_spec *spec, char **argv, char **envp, const char *cwd)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, master = -1, slave = -1;
    e->tty = (spec->flags & VMGMT_EXEC_FLAG_TTY) != 0;
    if (e->tty) {
        struct winsize ws = { .ws_row = spec->rows ? spec->rows : 24, .ws_col = spec->cols ? spec->cols : 80 };
        if (openpty(&master, &slave, NULL, NULL, &ws) != 0)
            return report_error(REPORT_EXIT_SYSTEM, "exec: openpty failed: %s", strerror(errno));
    } else if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        return report_error(REPORT_EXIT_SYSTEM, "exec: pipe failed: %s", strerror(errno));
    }
    /* The environment is built before vfork: the child only calls what is safe there, then execs. */
    size_t n_env = 0, n_add = 0;
    while (environ[n_env])
        n_env++;
    while (envp[n_add])
        n_add++;
    char **env = calloc(n_env + n_add + 2, sizeof(char *));
    if (!env)
        return report_error(REPORT_EXIT_SYSTEM, "exec: out of memory for the environment%s", "");
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        bool replaced = false;
        for (size_t j = 0; j < n_add && !replaced; j++) {
            const char *eq = strchr(envp[j], '=');
            size_t len = eq ? (size_t)(eq - envp[j]) + 1 : strlen(envp[j]);
            replaced = strncmp(environ[i], envp[j], len) == 0;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < n_add; j++)
        env[k++] = envp[j];
    if (!getenv("HOME"))
        env[k++] = "HOME=/root";
    env[k] = NULL;
    /* vfork: the exec process maps the device region; a fork would copy its page tables (slow under TCG). */
    pid_t pid = vfork();
    if (pid < 0) {
        free(env);
        return report_error(REPORT_EXIT_SYSTEM, "exec: vfork failed: %s", strerror(errno));
    }
    if (pid == 0) {
        setsid();
        signal(SIGPIPE, SIG_DFL); /* ignored in the exec process; an ignored signal would stay so across execve */
        if (e->tty) {
            ioctl(slave, TIOCSCTTY, 0);
            dup2(slave, 0);
            dup2(slave, 1);
            dup2(slave, 2);
        } else {
            dup2(in[0], 0);
            dup2(out[1], 1);
            dup2(err[1], 2);
        }
        if (cwd[0] && chdir(cwd) != 0) {
            static const char msg[] = "vmgmt exec: cannot change to the working directory\n";
            (void)!write(2, msg, sizeof(msg) - 1);
            _exit(126);
        }
        execvpe(argv[0], argv, env);
        int err_no = errno;
        static const char msg[] = "vmgmt exec: cannot run the command: ";
        (void)!write(2, msg, sizeof(msg) - 1);
        (void)!write(2, argv[0], strlen(argv[0]));
        (void)!write(2, err_no == ENOENT ? ": not found\n" : ": not executable\n", err_no == ENOENT ? 12 : 17);
        _exit(err_no == ENOENT ? 127 : 126);
    }
    free(env);
    e->child = pid;
    if (e->tty) {
        close(slave);
        e->out_fd[0] = master;
        e->out_fd[1] = -1;
        e->in_fd = dup(master);
    } else {
        close(in[0]);
        close(out[1]);
        close(err[1]);
        e->in_fd = in[1];
        e->out_fd[0] = out[0];
        e->out_fd[1] = err[0];
    }
    for (int i = 0; i < 2; i++)
        if (e->out_fd[i] >= 0)
            fcntl(e->out_fd[i], F_SETFL, O_NONBLOCK);
    fcntl(e->in_fd, F_SETFL, O_NONBLOCK);
    return REPORT_EXIT_OK;
}

static int exec_free_buffer(const struct exec_proc *e)
{
    for (uint32_t i = 0; i < EXEC_OUT_BUFFERS; i++)
        if (!e->out_busy[i])
            return (int)i;
    return -1;
}

/* Moves what can move without waiting; true when anything did. Returns a report_exit code in *rc. */
static bool exec_step(struct exec_proc *e, int *rc)
{
    bool moved = false;
    *rc = REPORT_EXIT_OK;
    while (ring_can_consume(&e->s.ch.c2g)) {
        if ((*rc = exec_take(e)))
            return true;
        moved = true;
    }
    /* Output: read a stream only into a free buffer (the back-pressure). */
    for (int s = 0; s < 2; s++) {
        int b;
        while (e->out_fd[s] >= 0 && (b = exec_free_buffer(e)) >= 0) {
            uint32_t off = (uint32_t)b * e->out_bytes;
            ssize_t n = read(e->out_fd[s], slice_at(&e->f.slice, off), e->out_bytes);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n <= 0) { /* EOF, or EIO: the pty's other side closed */
                exec_close(&e->out_fd[s]);
                moved = true;
                break;
            }
            struct vmgmt_exec_io io = { .stream = s == 0 ? VMGMT_EXEC_STREAM_STDOUT : VMGMT_EXEC_STREAM_STDERR, .length = (uint32_t)n, .buf_offset = off };
            if ((*rc = exec_send(e, VMGMT_MSG_EXEC_OUTPUT, &io, sizeof(io), (uint32_t)b)))
                return true;
            e->out_busy[b] = true;
            e->outputs_out++;
            moved = true;
        }
    }
    /* Input: write what the host gave, then ask for more. */
    if (e->in_fd >= 0 && e->pending_done < e->pending_len) {
        ssize_t n = write(e->in_fd, slice_at(&e->f.slice, e->in_off + e->pending_done), e->pending_len - e->pending_done);
        if (n > 0) {
            e->pending_done += (uint32_t)n;
            moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            exec_close(&e->in_fd); /* the command closed its stdin: drop the rest */
            e->pending_done = e->pending_len;
        }
    }
    if (e->pending_done == e->pending_len && !e->input_out) {
        if (e->input_eof) {
            if (!e->tty)
                exec_close(&e->in_fd);
        } else if (e->in_fd >= 0 && !e->reaped) {
            struct vmgmt_exec_io io = { .stream = VMGMT_EXEC_STREAM_STDIN, .length = EXEC_IN_BYTES, .buf_offset = e->in_off };
            if ((*rc = exec_send(e, VMGMT_MSG_EXEC_INPUT, &io, sizeof(io), 0)))
                return true;
            e->input_out = true;
            e->pending_len = e->pending_done = 0;
            moved = true;
        }
    }
    if (!e->reaped && e->child > 0 && waitpid(e->child, &e->status, WNOHANG) == e->child) {
        e->reaped = true;
        moved = true;
    }
    return moved;
}

/* Sleeps until a stream is readable or stdin writable, at most wait_ns (c2g is looked at by the next step). */
static void exec_wait(struct exec_proc *e, uint64_t wait_ns)
{
    struct pollfd p[3];
    nfds_t n = 0;
    bool room = exec_free_buffer(e) >= 0;
    for (int s = 0; s < 2; s++)
        if (e->out_fd[s] >= 0 && room)
            p[n++] = (struct pollfd){ .fd = e->out_fd[s], .events = POLLIN };
    if (e->in_fd >= 0 && e->pending_done < e->pending_len && !e->tty)
        p[n++] = (struct pollfd){ .fd = e->in_fd, .events = POLLOUT };
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)wait_ns };
    ppoll(p, n, &ts, NULL);
}

static int exec_run(struct exec_proc *e, const uint8_t token[16])
{
    struct vmgmt_exec_attach att;
    memcpy(att.token, token, sizeof(att.token));
    int rc = exec_send(e, VMGMT_MSG_EXEC_ATTACH, &att, sizeof(att), 0);
    if (rc)
        return rc;
    uint64_t deadline = clock_now_ns() + (uint64_t)EXEC_TIMEOUT_MS * 1000000ull;
    struct vmgmt_msg msg;
    for (;;) {
        enum channel_io io = channel_recv(&e->s.ch, &msg, e->payload, sizeof(e->payload), deadline);
        if (io != CHANNEL_IO_OK)
            return channel_report_io(&e->s.ch, io, EXEC_TIMEOUT_MS, "EXEC_ATTACH");
        if (msg.type == (VMGMT_MSG_EXEC_ATTACH | VMGMT_MSG_RESPONSE_BIT))
            break;
        if (!(msg.type & VMGMT_MSG_RESPONSE_BIT))
            exec_push(e, &msg);
    }
    memset(e->req, 0, sizeof(e->req));
    if (msg.status != VMGMT_ST_OK)
        return report_error(REPORT_EXIT_REFUSED, "exec: the host refused EXEC_ATTACH: %s (status %d)", vmgmt_status_text(msg.status), msg.status);
    struct vmgmt_exec_spec spec;
    if (msg.length < sizeof(spec))
        return report_error(REPORT_EXIT_PROTOCOL, "exec: EXEC_ATTACH answer of %u bytes, want %zu", msg.length, sizeof(spec));
    memcpy(&spec, e->payload, sizeof(spec));
    char *buf = NULL, **argv = NULL, **envp = NULL, *cwd = NULL;
    rc = exec_parse_spec(e, &spec, &buf, &argv, &envp, &cwd);
    if (!rc)
        rc = exec_start_command(e, &spec, argv, envp, cwd);
    if (rc) {
        free(buf);
        free(argv);
        free(envp);
        return rc;
    }
    uint64_t backoff = EXEC_POLL_MIN_NS;
    while (!(e->reaped && e->out_fd[0] < 0 && e->out_fd[1] < 0 && e->outputs_out == 0)) {
        if (exec_step(e, &rc)) {
            if (rc)
                break;
            backoff = EXEC_POLL_MIN_NS;
            continue;
        }
        exec_wait(e, backoff);
        if (backoff < EXEC_POLL_MAX_NS)
            backoff *= 2;
    }
    if (rc) {
        kill(-e->child, SIGKILL);
        waitpid(e->child, NULL, 0);
    } else {
        struct vmgmt_exec_exit ex = { .exit_code = WIFEXITED(e->status) ? WEXITSTATUS(e->status) : -1, .signal = WIFSIGNALED(e->status) ? WTERMSIG(e->status) : 0 };
        rc = exec_send(e, VMGMT_MSG_EXEC_EXIT, &ex, sizeof(ex), 0);
        deadline = clock_now_ns() + (uint64_t)EXEC_TIMEOUT_MS * 1000000ull;
        while (!rc && !e->exit_answered) {
            if (ring_can_consume(&e->s.ch.c2g))
                rc = exec_take(e);
            else if (clock_now_ns() > deadline)
                rc = report_error(REPORT_EXIT_TIMEOUT, "exec: the host did not answer EXEC_EXIT within %u ms", EXEC_TIMEOUT_MS);
            else
                exec_wait(e, EXEC_POLL_MAX_NS);
        }
    }
    exec_close(&e->in_fd);
    exec_close(&e->out_fd[0]);
    exec_close(&e->out_fd[1]);
    free(buf);
    free(argv);
    free(envp);
    return rc;
}

/* The exec process: its own session and channel; exits when the command's session ends. */
static int exec_process(const struct cli_common *agent_opts, const uint8_t token[16])
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdin is an EPIPE, not a death (the command gets SIG_DFL back before execvp) */
    struct exec_proc *e = calloc(1, sizeof(*e));
    if (!e)
        return REPORT_EXIT_SYSTEM;
    *e = (struct exec_proc){ .next_id = 1, .out_fd = { -1, -1 }, .in_fd = -1 };
    struct cli_common o = *agent_opts;
    o.owns_interrupts = false;
    o.wait = CLI_WAIT_POLL;
    o.timeout_ms = EXEC_TIMEOUT_MS;
    int rc = session_open(&e->s, &o, true);
    if (!rc)
        rc = fileop_start_in_mode(&e->f, &e->s.ch, EXEC_TIMEOUT_MS, VMGMT_MODE_EXEC, "exec");
    /* The agent answers EXEC_START by this: a session that cannot start fails at once, not at the host's attach wait. */
    uint8_t ready = (uint8_t)(rc ? rc : 0);
    if (write(EXEC_READY_FD, &ready, 1) != 1)
        rc = rc ? rc : REPORT_EXIT_SYSTEM;
    close(EXEC_READY_FD);
    if (!rc) {
        uint32_t need = EXEC_OUT_BUFFERS * 4096u + EXEC_IN_BYTES;
        if (e->f.slice.size < need) {
            rc = report_error(REPORT_EXIT_DEVICE_INVALID, "exec: the data slice of %u bytes is smaller than the %u exec needs", e->f.slice.size, need);
        } else {
            e->out_bytes = (e->f.slice.size - EXEC_IN_BYTES) / EXEC_OUT_BUFFERS;
            if (e->out_bytes > EXEC_OUT_BYTES)
                e->out_bytes = EXEC_OUT_BYTES;
            e->in_off = EXEC_OUT_BUFFERS * e->out_bytes;
            rc = exec_run(e, token);
        }
    }
    session_close(&e->s);
    free(e);
    return rc;
}

/* `vmgmt-guest exec-process TOKEN [-d BDF] [-v]`: what exec_spawn starts (not for people). Forks the exec
 * process and exits at once, so the agent reaps this one and never the exec process. */
int exec_process_main(int argc, char **argv)
{
    struct cli_common o = { .wait = CLI_WAIT_POLL, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = EXEC_TIMEOUT_MS };
    uint8_t token[16];
    if (argc < 3 || strlen(argv[2]) != 32)
        return cli_usage_error("exec-process needs a 32-hex-digit token (it is started by the agent, not by hand): %s", argc < 3 ? "" : argv[2]);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(argv[2] + 2 * i, "%2x", &v) != 1)
            return cli_usage_error("exec-process token %s is not hex", argv[2]);
        token[i] = (uint8_t)v;
    }
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            o.bdf = argv[++i];
        else if (strcmp(argv[i], "-v") == 0)
            o.verbose = true;
        else
            return cli_usage_error("exec-process: unexpected argument '%s'", argv[i]);
    }
    pid_t pid = fork();
    if (pid < 0)
        return REPORT_EXIT_SYSTEM;
    if (pid > 0)
        _exit(0);
    _exit(exec_process(&o, token));
}

int32_t exec_spawn(const struct cli_common *agent_opts, const struct vmgmt_msg *msg, const uint8_t *payload)
{
    struct vmgmt_exec_start start;
    if (msg->length != sizeof(start))
        return VMGMT_ST_BAD_LENGTH;
    memcpy(&start, payload, sizeof(start));
    if (start.reserved != 0 || (start.flags & ~(uint32_t)VMGMT_EXEC_FLAG_TTY) != 0)
        return VMGMT_ST_RESERVED_NONZERO;
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) {
        fprintf(stderr, "agent: cannot make a pipe for an exec process: %s\n", strerror(errno));
        return VMGMT_ST_EXEC_SPAWN_FAILED;
    }
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", start.token[i]);
    char *args[] = { "vmgmt-guest", "exec-process", hex, NULL, NULL, NULL, NULL };
    int n = 3;
    if (agent_opts->bdf) {
        args[n++] = "-d";
        args[n++] = (char *)agent_opts->bdf;
    }
    if (agent_opts->verbose)
        args[n++] = "-v";
    /* posix_spawn (vfork-like) of ourselves: the agent maps the device region and holds vfio, and a fork would
     * copy its page tables (slow under TCG). The new process has nothing of the agent's but stdio and the
     * ready pipe (on fd 3). */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, ready[1], EXEC_READY_FD);
    posix_spawn_file_actions_addclosefrom_np(&fa, EXEC_READY_FD + 1);
    fflush(stderr);
    pid_t pid;
    int err = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(ready[1]);
    if (err != 0) {
        fprintf(stderr, "agent: cannot start an exec process: %s\n", strerror(err));
        close(ready[0]);
        return VMGMT_ST_EXEC_SPAWN_FAILED;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    /* It holds its channel (0), or says why not; at most EXEC_READY_WAIT_MS. */
    uint8_t b = 1;
    struct pollfd p = { .fd = ready[0], .events = POLLIN };
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || poll(&p, 1, EXEC_READY_WAIT_MS) != 1 || read(ready[0], &b, 1) != 1)
        b = 1;
    close(ready[0]);
    return b == 0 ? VMGMT_ST_OK : VMGMT_ST_EXEC_SPAWN_FAILED;
}
