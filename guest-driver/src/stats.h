/* stats: the stats mode. `vmgmt-guest stats ...` and the loop the agent runs beside its agent channel.
 *   - The loop (stats_serve, forked by the agent; `stats serve` runs it alone) claims a channel in
 *     MODE_STATS and sends a STATS_RECORD every interval (1 s until the host pushes STATS_CONFIG): CPU time
 *     from /proc/stat, memory from /proc/meminfo, /proc/loadavg, procs_running, /proc/pressure/{cpu,memory,io}
 *     where the kernel has them, and the declared demand.
 *   - The declared demand lives in STATS_DEMAND_FILE, one line "DEMAND EXPIRES_MS REASON" (EXPIRES_MS:
 *     CLOCK_MONOTONIC ms, 0 = until changed), written atomically by `stats demand` and read by the loop before
 *     each record. A file is the simplest thing every process in the guest can write, and survives an agent
 *     restart.
 *   - What the host pushes as STATS_SHARE is written by the loop to STATS_SHARE_FILE (key=value lines);
 *     `stats share` prints it.
 *   - It notices the channel being lost or the core restarting and claims again, like the agent. */
#ifndef VG_STATS_H
#define VG_STATS_H

#include "cli.h"

#define STATS_DIR "/run/vmgmt-guest"
#define STATS_DEMAND_FILE STATS_DIR "/demand"
#define STATS_SHARE_FILE STATS_DIR "/share"

/* argv[1] is "stats". Returns the process exit code. */
int stats_main(int argc, char **argv);

/* The record loop; runs until SIGTERM/SIGINT. Returns the process exit code. */
int stats_serve(const struct cli_common *o);

#endif
