#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

int cli_usage_error(const char *fmt, const char *value)
{
    fputs("vmgmt-guest: ", stderr);
    fprintf(stderr, fmt, value);
    fputs(" (see vmgmt-guest help)\n", stderr);
    return REPORT_EXIT_USAGE;
}

static int cli_parse_number(const char *text, int base, const char *what, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, base);
    if (errno || end == text || *end || text[0] == '-' || v < min || v > max) {
        if (base == 8)
            fprintf(stderr, "vmgmt-guest: %s '%s' is not an octal number between %o and %o (see vmgmt-guest help)\n", what, text, min, max);
        else
            fprintf(stderr, "vmgmt-guest: %s '%s' is not a whole number between %u and %u (see vmgmt-guest help)\n", what, text, min, max);
        return REPORT_EXIT_USAGE;
    }
    *out = (uint32_t)v;
    return REPORT_EXIT_OK;
}

int cli_parse_u32(const char *text, const char *what, uint32_t min, uint32_t max, uint32_t *out)
{
    return cli_parse_number(text, 10, what, min, max, out);
}

int cli_parse_u32_base(const char *text, int base, const char *what, uint32_t min, uint32_t max, uint32_t *out)
{
    return cli_parse_number(text, base, what, min, max, out);
}

int cli_parse_wait(const char *text, enum cli_wait_choice *out)
{
    if (strcmp(text, "auto") == 0)
        *out = CLI_WAIT_AUTO;
    else if (strcmp(text, "msix") == 0)
        *out = CLI_WAIT_MSIX;
    else if (strcmp(text, "poll") == 0)
        *out = CLI_WAIT_POLL;
    else if (strcmp(text, "relay") == 0)
        *out = CLI_WAIT_RELAY;
    else
        return cli_usage_error("--wait '%s' is not one of auto, msix, relay, poll", text);
    return REPORT_EXIT_OK;
}
