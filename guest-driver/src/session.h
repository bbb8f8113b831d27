/* session: the steps every command that talks to the core takes, in order, and their undoing: find the
 * device, set up the wait method, map the BARs, validate the header, initialise the device, claim a channel. */
#ifndef VG_SESSION_H
#define VG_SESSION_H
#include <stdbool.h>

#include "channel.h"
#include "cli.h"
#include "dev.h"

struct session {
    struct vmgmt_dev dev;
    struct channel ch;      /* ch.claimed says whether there is one to release */
};

/* Find, map and validate; with `talk`, also MSI-X setup (per o->wait), device init and a channel claim.
 * On failure everything done so far is undone. Returns a report_exit code. */
int session_open(struct session *s, const struct cli_common *o, bool talk);

/* The agent, polling because another process held the vfio group when it connected: tries vfio (and the
 * relay) again. True when it holds MSI-X now. */
bool session_retry_interrupts(struct vmgmt_dev *dev);

/* `vmgmt-guest reset`: maps the BARs from sysfs (no vfio, polling), resets the device through the core
 * without trusting the header, then validates the header and initialises the device. Prints one line,
 * "reset: device <bdf> ms=<t>". Returns a report_exit code. */
int session_reset_device(const struct cli_common *o);

/* Releases the channel, unmaps the BARs, closes vfio. Safe after a failed session_open. */
void session_close(struct session *s);

/*
 * The shape of every command that claims a channel: install the signal handlers, open a session, run
 * body on it, flush stdout (a failed flush is an error), close. Returns body's exit code.
 */
int session_run(const struct cli_common *o, int (*body)(struct session *s, void *ctx), void *ctx);

#endif
