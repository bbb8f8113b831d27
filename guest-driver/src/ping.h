/* ping: round trips of VMGMT_MSG_PING on a claimed channel, timed with CLOCK_MONOTONIC. */
#ifndef VG_PING_H
#define VG_PING_H
#include <stdint.h>

#include "channel.h"

struct ping_options {
    uint32_t count;       /* pings, sent one at a time */
    uint32_t timeout_ms;  /* per ping */
};

/* Sends the pings and prints the summary line
 *   ping: n=<N> min_us=<..> median_us=<..> p99_us=<..> max_us=<..> wait=<msix|poll>
 * Returns a report_exit code. */
int ping_run(struct channel *ch, const struct ping_options *opt);

/* Summary statistics of round-trip times, sorting rtt_ns in place. */
struct ping_stats {
    uint64_t min_ns, median_ns, p99_ns, max_ns;
};
void ping_stats_compute(uint64_t *rtt_ns, uint32_t n, struct ping_stats *out);

#endif
