/* report: exit codes and the messages the driver prints. Every error names the failing value and says
 * what to do; verbose notes go to stderr only under -v. */
#ifndef VG_REPORT_H
#define VG_REPORT_H
#include <stdbool.h>

/* Process exit codes; guest-driver/README.md documents them. */
enum report_exit {
    REPORT_EXIT_OK = 0,
    REPORT_EXIT_SYSTEM = 1,          /* a system call failed (permissions, missing sysfs file, vfio) */
    REPORT_EXIT_USAGE = 2,           /* bad command line */
    REPORT_EXIT_NO_DEVICE = 3,       /* no PCI device 1af4:1110 */
    REPORT_EXIT_DEVICE_INVALID = 4,  /* header magic, version or geometry rejected */
    REPORT_EXIT_TIMEOUT = 5,         /* the management core did not answer in time */
    REPORT_EXIT_PROTOCOL = 6,        /* the core returned an error status or broke the protocol */
    REPORT_EXIT_NO_CHANNEL = 7,      /* every channel is owned by a live process */
    REPORT_EXIT_REFUSED = 8,         /* the host refused a file operation (status printed in words) */
    REPORT_EXIT_INTEGRITY = 9,       /* sha256 of the host file and the guest file differ */
};

/* Prints "vmgmt-guest: <message>\n" on stderr; returns code so callers can `return report_error(...)`. */
int report_error(enum report_exit code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A loop that retries the same failure says it once: while quiet, report_error prints nothing. */
void report_set_quiet(bool quiet);

/* Prints "vmgmt-guest: <message>\n" on stderr when verbose is true. */
void report_verbose(bool verbose, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
