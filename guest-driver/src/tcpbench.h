/* tcpbench: the way sibling VMs talk today, as the chat bench's baseline. `bench tcp-echo [--port P]`
 * serves one connection at a time and writes back what it reads; `bench tcp-rtt HOST[:PORT] [--size B]
 * [-n N]` sends B bytes, waits for the same B bytes back, N times (TCP_NODELAY on both ends), and prints
 * `tcp-rtt: n=<N> bytes=<B> min_us=.. median_us=.. p99_us=.. max_us=..`. Uses no device. */
#ifndef VG_TCPBENCH_H
#define VG_TCPBENCH_H

#define TCPBENCH_DEFAULT_PORT 7070u
#define TCPBENCH_DEFAULT_SIZE 64u
#define TCPBENCH_MAX_SIZE (1u << 20)

/* argv[1] is "bench", argv[2] "tcp-echo" or "tcp-rtt". Returns the process exit code. */
int tcpbench_main(int argc, char **argv);

#endif
