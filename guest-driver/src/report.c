#include "report.h"

#include <stdarg.h>
#include <stdio.h>

static void report_vprint(const char *fmt, va_list ap)
{
    fputs("vmgmt-guest: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static bool report_quiet;

void report_set_quiet(bool quiet)
{
    report_quiet = quiet;
}

int report_error(enum report_exit code, const char *fmt, ...)
{
    if (report_quiet)
        return (int)code;
    va_list ap;
    va_start(ap, fmt);
    report_vprint(fmt, ap);
    va_end(ap);
    return (int)code;
}

void report_verbose(bool verbose, const char *fmt, ...)
{
    if (!verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    report_vprint(fmt, ap);
    va_end(ap);
}
