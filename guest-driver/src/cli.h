/* cli: small command-line helpers shared by the commands: usage errors, numbers, the options every
 * command takes (-d, -v) and those of every command that talks to the core (--wait, --spin-us, -t). */
#ifndef VG_CLI_H
#define VG_CLI_H
#include <stdbool.h>
#include <stdint.h>

#define CLI_MAX_TIMEOUT_MS 3600000u

/* auto: the agent takes MSI-X (vfio) when it can, else polls; any other command takes the agent's relay when one
 * serves the device, else polls (it leaves vfio to the agent). msix: hold vfio and the eventfd ourselves.
 * relay: the agent's relay or fail. poll: never block on an interrupt. */
enum cli_wait_choice { CLI_WAIT_AUTO, CLI_WAIT_MSIX, CLI_WAIT_POLL, CLI_WAIT_RELAY };

struct update_adopt;

/* What every command that opens the device needs. */
struct cli_common {
    const char *bdf;              /* -d: NULL = the first device */
    bool verbose;                 /* -v */
    enum cli_wait_choice wait;    /* --wait */
    uint32_t spin_us;             /* --spin-us */
    uint32_t timeout_ms;          /* -t: per answer of the core */
    bool owns_interrupts;         /* the agent: takes vfio under auto and serves the wake-up relay */
    const struct update_adopt *adopt; /* a new agent during a driver update: vfio and the relay handed over (src/update.h) */
};

/* Prints "vmgmt-guest: <fmt with value> (see vmgmt-guest help)"; returns REPORT_EXIT_USAGE. */
int cli_usage_error(const char *fmt, const char *value);

/* Decimal whole number in min..max, or a usage error naming `what`. */
int cli_parse_u32(const char *text, const char *what, uint32_t min, uint32_t max, uint32_t *out);

/* Like cli_parse_u32 in another base; base 0 accepts 0x.. (hex), 0.. (octal) and decimal, as C does. */
int cli_parse_u32_base(const char *text, int base, const char *what, uint32_t min, uint32_t max, uint32_t *out);

/* auto | msix | poll | relay. */
int cli_parse_wait(const char *text, enum cli_wait_choice *out);

#endif
