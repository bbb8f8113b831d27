/*
 * vmgmt-calc-exec: how the daemon starts a declared calculation program (docs/decisions/calc-programs.md).
 *
 *   vmgmt-calc-exec --uid UID --gid GID [--cgroup PROCS_FILE]... -- PROGRAM [ARG]...
 *
 * Started by the daemon (as root, through execa, with an empty environment and stdin/stdout/stderr as
 * pipes), it puts itself into each job cgroup (writing "0" to a cgroup.procs file moves the writer),
 * drops every privilege for good (supplementary groups, then the gid, then the uid, then no_new_privs),
 * checks that root cannot be regained, and execs PROGRAM. So the program and everything it forks start
 * inside the cgroup's limits, and no byte of the guest's input (it comes later, on stdin) reaches a
 * process running as root. No shell, no PATH lookup: PROGRAM is an absolute path.
 *
 * The program gets SIGKILL if the daemon dies (PR_SET_PDEATHSIG, set after the credentials change, which
 * would clear it); what it forked is killed by the next daemon, which sweeps the dead one's cgroups.
 *
 * Exit status 125 when a step before exec failed (the reason is on stderr), 127 when exec failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CE_EXIT_SETUP 125
#define CE_EXIT_EXEC 127
#define CE_MAX_CGROUPS 8

extern char **environ;

static int ce_fail(const char *what, const char *arg)
{
    fprintf(stderr, "vmgmt-calc-exec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
    return CE_EXIT_SETUP;
}

static int ce_usage(const char *why)
{
    fprintf(stderr, "vmgmt-calc-exec: %s\nusage: vmgmt-calc-exec --uid UID --gid GID [--cgroup PROCS_FILE]... -- PROGRAM [ARG]...\n", why);
    return CE_EXIT_SETUP;
}

static int ce_parse_id(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v >= (unsigned long)UINT_MAX)
        return -1;
    *out = v;
    return 0;
}

static int ce_join(const char *procs)
{
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return ce_fail("cannot open the job cgroup's", procs);
    ssize_t n = write(fd, "0", 1);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == 1 ? 0 : ce_fail("cannot join the job cgroup through", procs);
}

int main(int argc, char **argv)
{
    pid_t parent = getppid();
    unsigned long uid = 0, gid = 0;
    const char *cgroups[CE_MAX_CGROUPS];
    int ncgroups = 0, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            return ce_usage("an option needs a value");
        if (strcmp(argv[i], "--uid") == 0) {
            if (ce_parse_id(argv[++i], &uid))
                return ce_usage("--uid must be a number other than 0 (root)");
        } else if (strcmp(argv[i], "--gid") == 0) {
            if (ce_parse_id(argv[++i], &gid))
                return ce_usage("--gid must be a number other than 0 (root)");
        } else if (strcmp(argv[i], "--cgroup") == 0) {
            if (ncgroups == CE_MAX_CGROUPS)
                return ce_usage("too many --cgroup");
            cgroups[ncgroups++] = argv[++i];
        } else {
            return ce_usage("unknown option");
        }
    }
    if (uid == 0 || gid == 0)
        return ce_usage("--uid and --gid are required");
    if (i >= argc || argv[i][0] != '/')
        return ce_usage("PROGRAM must be an absolute path");

    for (int k = 0; k < ncgroups; k++)
        if (ce_join(cgroups[k]))
            return CE_EXIT_SETUP;
    if (chdir("/") != 0)
        return ce_fail("cannot chdir to", "/");
    if (setgroups(0, NULL) != 0)
        return ce_fail("cannot drop supplementary groups", NULL);
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0)
        return ce_fail("cannot set the group id", NULL);
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)
        return ce_fail("cannot set the user id", NULL);
    if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
        errno = EPERM;
        return ce_fail("refusing to run: root could be regained after dropping privileges", NULL);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return ce_fail("cannot set no_new_privs", NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return ce_fail("cannot set the parent-death signal", NULL);
    if (getppid() != parent) {
        errno = ESRCH;
        return ce_fail("the daemon that started this job is gone", NULL);
    }
    /* Only stdin, stdout and stderr go to the program. */
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
        for (int fd = 3; fd < 4096; fd++)
            (void)close(fd);

    execve(argv[i], &argv[i], environ);
    fprintf(stderr, "vmgmt-calc-exec: cannot run %s: %s\n", argv[i], strerror(errno));
    return CE_EXIT_EXEC;
}
