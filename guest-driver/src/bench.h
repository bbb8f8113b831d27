/* bench: `vmgmt-guest bench memcpy [--mib N] [--reps R]`, the ceiling the file transfers compare against.
 * Claims a channel (so its data slice is ours), fills N MiB of guest RAM, and copies it into the slice and
 * back out in chunks of min(slice size, 1 MiB) (chunk i goes to slice offset i * chunk, wrapping, as the
 * transfer buffers do); each direction is timed on its own over R reps after one untimed warm-up rep.
 * Prints exactly `memcpy: to_bar_MBps=<x> from_bar_MBps=<y> bytes=<n>` (MBps = 10^6 bytes/s, one decimal;
 * bytes = N MiB * R, per direction). */
#ifndef VG_BENCH_H
#define VG_BENCH_H

#define BENCH_DEFAULT_MIB 64u
#define BENCH_DEFAULT_REPS 3u
#define BENCH_CHUNK_BYTES (1u << 20)

/* argv[1] is "bench". Returns the process exit code. */
int bench_main(int argc, char **argv);

#endif
