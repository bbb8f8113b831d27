/* device: the header in BAR2 and the ivshmem registers in BAR0. Validates the header before anything uses
 * it (the driver does not trust the device) and runs the status handshake. */
#ifndef VG_DEVICE_H
#define VG_DEVICE_H
#include <stddef.h>
#include <stdint.h>

#include "dev.h"

/* Feature bits this driver understands; it accepts host_features & DEVICE_SUPPORTED_FEATURES. */
#define DEVICE_SUPPORTED_FEATURES VMGMT_FEATURE_NOTIFY_SUPPRESSION

/* Smallest data slice per channel the driver accepts: room for one path. */
#define DEVICE_MIN_DATA_SLICE_BYTES 4096u

/* Copies the header out of BAR2 into dev->geom and validates it in a fixed order: magic, version, header
 * size, region size, ring geometry, channel count, channel blocks and data window inside the BAR. Sets
 * dev->hdr and dev->peer_id. Returns a report_exit code (REPORT_EXIT_DEVICE_INVALID with the reason). */
int device_validate(struct vmgmt_dev *dev);

/* If the device is not DRIVER_OK (or the core set NEEDS_RESET): resets it through the core and negotiates
 * features. Otherwise another process did that already and only the accepted features are read.
 * Returns a report_exit code. */
int device_init(struct vmgmt_dev *dev, uint32_t timeout_ms);

/* Asks the core for a device reset without trusting the header: only reset_request and reset_done, at their
 * fixed offsets, and the core's fixed peer id 0 are used, so it works on a header the guest scribbled over
 * (the core rewrites its half of the header as part of the reset). Every channel is freed: processes using
 * one get errors and must claim again. Needs only the BARs mapped; validate and init afterwards.
 * Returns a report_exit code. */
int device_reset_unchecked(struct vmgmt_dev *dev, uint32_t timeout_ms);

/* Rings `vector` on ivshmem peer `peer`. */
void device_doorbell(struct vmgmt_dev *dev, uint32_t peer, uint32_t vector);

/* Rings `vector` on the management core. */
void device_notify_core(struct vmgmt_dev *dev, uint32_t vector);

/* Reads a 32-bit BAR0 register. */
uint32_t device_reg_read(const struct vmgmt_dev *dev, uint32_t offset);

/* "ACKNOWLEDGE|DRIVER|..." for a device_status value, "0" for none. */
const char *device_status_words(uint32_t status, char *buf, size_t cap);

#endif
