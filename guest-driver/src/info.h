/* info: print what the driver sees of a validated device, as text or JSON. */
#ifndef VG_INFO_H
#define VG_INFO_H
#include <stdbool.h>

#include "dev.h"

/* Prints to stdout; returns a report_exit code. */
int info_print(const struct vmgmt_dev *dev, bool json);

#endif
