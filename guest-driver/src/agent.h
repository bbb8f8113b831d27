/* agent: `vmgmt-guest agent`, the resident guest agent. It claims a channel in MODE_AGENT and serves the
 * requests the HOST starts on the channel's c2g ring (messages without RESPONSE_BIT; AGENT_COPY only, see
 * src/agentmsg.c and src/agentcopy.c), one after another, answering each on g2c with the same request_id,
 * type | RESPONSE_BIT, a status and struct vmgmt_file_io_result {bytes mod 2^32}.
 *   - Requests that arrive while a copy runs (between the answers to the agent's own FILE_* requests) are
 *     queued, up to AGENT_QUEUE_MAX (the one being copied included); beyond that, and for malformed ones,
 *     the answer (RING_FULL, or the decoder's status) goes out at once. A request of another type is logged
 *     and not answered: the core would count an answer of a type it does not know as our protocol error.
 *   - Idle, it holds vfio and blocks on the RING interrupt (--wait auto, the default), relaying every
 *     interrupt to the device's other vmgmt-guest processes (src/relay.h); it wakes once a second to look for
 *     channels left behind. Without vfio (or with --wait poll) it polls c2g with a back-off up to
 *     AGENT_WARM_BACKOFF_NS (--poll-ms) for AGENT_WARM_NS after a request, then up to AGENT_IDLE_BACKOFF_NS
 *     (--idle-poll-ms): under TCG every look costs ~100-250 us of guest CPU; its startup line says why.
 *   - It notices the channel being lost (state not READY, another owner or generation, mode not AGENT) and
 *     the core restarting (core_generation changes) or resetting the device, and then claims a channel and
 *     sets the mode again. Without a device or a core it retries every AGENT_RETRY_MS.
 *   - SIGTERM/SIGINT: resets its channel (the core drops the agent mode and fails outstanding copies at
 *     once), releases it and dies from the signal.
 * One line per copy on stderr: `agent: copy to-guest /path bytes=N ms=T status=S`. */
#ifndef VG_AGENT_H
#define VG_AGENT_H

#define AGENT_QUEUE_MAX 8u
#define AGENT_WARM_BACKOFF_NS 2000000ull
#define AGENT_WARM_NS 10000000000ull
#define AGENT_IDLE_BACKOFF_NS 100000000ull
#define AGENT_RETRY_MS 3000u

/* argv[1] is "agent". Runs until SIGTERM/SIGINT; returns the process exit code. */
int agent_main(int argc, char **argv);

#endif
