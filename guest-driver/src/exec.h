/* exec: `vmgmt vm exec` in the guest. The agent gets EXEC_START {token, flags} on its channel and calls
 * exec_spawn, which forks (twice, so the agent never waits for it) an exec process. That process claims a
 * channel of its own in MODE_EXEC, says EXEC_ATTACH {token}, reads the command line the host put in its data
 * slice, runs the command on pipes (or a pty with EXEC_FLAG_TTY) and streams:
 *   stdout/stderr -> EXEC_OUTPUT requests, at most EXEC_OUT_BUFFERS unanswered (the host answers once its
 *                    client took the bytes; until then the pipes are not read and the command blocks);
 *   stdin         <- one EXEC_INPUT request at a time, answered when the client sent some or at end of input;
 *   EXEC_SIGNAL / EXEC_RESIZE pushes -> kill(-pgid) / TIOCSWINSZ;
 *   exit          -> EXEC_EXIT {exit_code, signal} once both streams ended and the command was reaped.
 * It polls (no vfio: the agent owns the interrupt), backing off to EXEC_POLL_MAX_NS while nothing moves. */
#ifndef VG_EXEC_H
#define VG_EXEC_H
#include <stdint.h>
#include "cli.h"
#include "vmgmt_layout.h"

/* Validates an EXEC_START and forks the exec process; waits (at most 5 s) until it holds its channel in
 * MODE_EXEC, so that no free channel fails the request at once. Returns the status to answer with
 * (VMGMT_ST_OK, or BAD_LENGTH / RESERVED_NONZERO / EXEC_SPAWN_FAILED). Does not wait for the command. */
int32_t exec_spawn(const struct cli_common *agent_opts, const struct vmgmt_msg *msg, const uint8_t *payload);
/* `vmgmt-guest exec-process TOKEN [-d BDF] [-v]`, started by exec_spawn only. */
int exec_process_main(int argc, char **argv);
#endif
