/* vfio: bind the device to vfio-pci and route its MSI-X vectors to eventfds, the only way an interrupt of
 * this device reaches userspace (it has no INTx; uio_pci_generic gets nothing). Needs an IOMMU in the guest
 * (QEMU q35 + -device intel-iommu,intremap=on, guest kernel intel_iommu=on). */
#ifndef VG_VFIO_H
#define VG_VFIO_H
#include <stddef.h>

#include "dev.h"

/* Binds dev to vfio-pci if needed, opens container, group and device, enables bus mastering and wires MSI-X
 * vectors VMGMT_VECTOR_RING (and VMGMT_VECTOR_CONFIG when present) to eventfds in dev->vfio.
 * Returns 0, or -1 with the reason in words in why (vfio unavailable is not fatal: callers may poll). */
int vfio_open(struct vmgmt_dev *dev, char *why, size_t why_cap);

/* Maps BAR0 and BAR2 through the vfio device fd (when sysfs mapping is refused). Returns a report_exit code. */
int vfio_map_bars(struct vmgmt_dev *dev);

/* Disables the interrupts and closes every vfio fd. The device stays bound to vfio-pci. */
void vfio_close(struct vmgmt_dev *dev);

#endif
