#include "signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t signals_stop_signal;

static void signals_on_stop(int sig)
{
    signals_stop_signal = sig;
}

void signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = signals_on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int signals_stop_requested(void)
{
    return signals_stop_signal;
}

void signals_reraise(void)
{
    int sig = signals_stop_signal;
    if (!sig)
        return;
    signal(sig, SIG_DFL);
    raise(sig);
}
