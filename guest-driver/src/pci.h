/* pci: find the management device in sysfs by its PCI ids and map its BARs from sysfs resource files. */
#ifndef VG_PCI_H
#define VG_PCI_H
#include <stdbool.h>

#include "dev.h"

#define PCI_SYSFS_DEVICES "/sys/bus/pci/devices"

/* Finds device 1af4:1110 (want_bdf selects one when several exist; NULL takes the first), fills dev->bdf,
 * dev->sysfs_dir and the BAR sizes. Returns a report_exit code. */
int pci_find(struct vmgmt_dev *dev, const char *want_bdf);

/* Maps BAR0 (registers) and BAR2 (region) from sysfs resource0/resource2. Returns a report_exit code; when
 * quiet, the reason for a failure is printed only under -v (the caller has another way). */
int pci_map_sysfs(struct vmgmt_dev *dev, bool quiet);

/* Undoes whichever mapping (sysfs or vfio) is in place. */
void pci_unmap(struct vmgmt_dev *dev);

#endif
