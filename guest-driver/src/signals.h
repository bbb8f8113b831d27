/* signals: SIGINT/SIGTERM set a stop flag (and interrupt sleeps) so the driver can release its channel
 * before it dies. The flag is the one piece of process-wide state: a signal handler has nowhere else to write. */
#ifndef VG_SIGNALS_H
#define VG_SIGNALS_H

/* Installs the handlers without SA_RESTART, so blocking calls return EINTR. */
void signals_install(void);
/* The signal that asked us to stop, or 0. */
int signals_stop_requested(void);
/* After cleanup: dies from the signal that stopped us, so the parent sees the usual status. */
void signals_reraise(void);

#endif
