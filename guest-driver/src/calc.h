/* calc: the calculation mode. `vmgmt-guest calc FUNCTION [INPUT|-] [OUTPUT|-]` claims a channel, puts it in
 * MODE_CALC and has the host run FUNCTION on the input, streamed through the channel's data slice; the
 * result comes back the same way. `--hex` prints a result as hex (digests). Every status in words. */
#ifndef VG_CALC_H
#define VG_CALC_H

/* vmgmt-guest calc ...; returns the exit code. */
int calc_main(int argc, char **argv);

#endif
