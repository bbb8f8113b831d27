#include "vfio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"
#include "sysfs.h"

#define VFIO_DRIVER_NAME "vfio-pci"

static int vfio_fail(char *why, size_t why_cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int vfio_fail(char *why, size_t why_cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int vfio_bind(struct vmgmt_dev *dev, char *why, size_t why_cap)
{
    char driver[64], path[192];
    sysfs_link_name(dev->sysfs_dir, "driver", driver, sizeof(driver));
    if (strcmp(driver, VFIO_DRIVER_NAME) == 0)
        return 0;
    snprintf(path, sizeof(path), "%s/driver_override", dev->sysfs_dir);
    int err = sysfs_write(path, VFIO_DRIVER_NAME);
    if (err)
        return vfio_fail(why, why_cap, "cannot write %s to %s: %s", VFIO_DRIVER_NAME, path, strerror(-err));
    if (driver[0]) {
        snprintf(path, sizeof(path), "%s/driver/unbind", dev->sysfs_dir);
        err = sysfs_write(path, dev->bdf);
        if (err)
            return vfio_fail(why, why_cap, "cannot unbind %s from driver %s: %s", dev->bdf, driver, strerror(-err));
    }
    err = sysfs_write("/sys/bus/pci/drivers_probe", dev->bdf);
    sysfs_link_name(dev->sysfs_dir, "driver", driver, sizeof(driver));
    if (strcmp(driver, VFIO_DRIVER_NAME) != 0)
        return vfio_fail(why, why_cap, "binding %s to vfio-pci failed (drivers_probe: %s; driver now '%s'); is the guest IOMMU on?",
                         dev->bdf, err ? strerror(-err) : "ok", driver);
    report_verbose(dev->verbose, "bound %s to vfio-pci", dev->bdf);
    return 0;
}

/* Sets memory decoding and bus mastering in the command register: without bus mastering the device's
 * MSI-X writes never reach the interrupt remapper. */
static int vfio_enable_bus_master(struct vmgmt_dev *dev, char *why, size_t why_cap)
{
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
        return vfio_fail(why, why_cap, "VFIO_DEVICE_GET_REGION_INFO(config) failed: %s", strerror(errno));
    uint16_t cmd;
    if (pread(dev->vfio.device_fd, &cmd, sizeof(cmd), (off_t)(cfg.offset + PCI_COMMAND)) != sizeof(cmd))
        return vfio_fail(why, why_cap, "reading the PCI command register through vfio failed: %s", strerror(errno));
    uint16_t want = cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    if (want != cmd && pwrite(dev->vfio.device_fd, &want, sizeof(want), (off_t)(cfg.offset + PCI_COMMAND)) != sizeof(want))
        return vfio_fail(why, why_cap, "setting bus master in the PCI command register through vfio failed: %s", strerror(errno));
    return 0;
}

static int vfio_set_msix(struct vmgmt_dev *dev, char *why, size_t why_cap)
{
    struct vfio_irq_info info = { .argsz = sizeof(info), .index = VFIO_PCI_MSIX_IRQ_INDEX };
    if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
        return vfio_fail(why, why_cap, "VFIO_DEVICE_GET_IRQ_INFO(MSI-X) failed: %s", strerror(errno));
    if (info.count <= VMGMT_VECTOR_RING)
        return vfio_fail(why, why_cap, "device %s has %u MSI-X vectors; need vector %d (start QEMU with ivshmem-doorbell,vectors=2)",
                         dev->bdf, info.count, VMGMT_VECTOR_RING);
    unsigned count = info.count > VMGMT_VECTOR_CONFIG ? 2 : 1;
    for (unsigned i = 0; i < count; i++) {
        dev->vfio.irq_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (dev->vfio.irq_fd[i] < 0)
            return vfio_fail(why, why_cap, "eventfd() failed: %s", strerror(errno));
    }
    char buf[sizeof(struct vfio_irq_set) + 2 * sizeof(int32_t)];
    struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
    set->argsz = (uint32_t)(sizeof(*set) + count * sizeof(int32_t));
    set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = count;
    memcpy(set->data, dev->vfio.irq_fd, count * sizeof(int32_t));
    if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_SET_IRQS, set) < 0)
        return vfio_fail(why, why_cap, "VFIO_DEVICE_SET_IRQS(MSI-X, %u vectors) failed: %s", count, strerror(errno));
    dev->vfio.irq_count = count;
    return 0;
}

int vfio_open(struct vmgmt_dev *dev, char *why, size_t why_cap)
{
    struct stat st;
    if (stat("/sys/bus/pci/drivers/" VFIO_DRIVER_NAME, &st) != 0)
        return vfio_fail(why, why_cap, "the vfio-pci driver is not loaded in this guest (modprobe vfio-pci)");
    char group[32];
    sysfs_link_name(dev->sysfs_dir, "iommu_group", group, sizeof(group));
    if (!group[0])
        return vfio_fail(why, why_cap, "device %s has no IOMMU group (start QEMU with -machine q35 -device intel-iommu,intremap=on and boot the guest with intel_iommu=on)",
                         dev->bdf);
    if (vfio_bind(dev, why, why_cap))
        return -1;

    char path[64];
    snprintf(path, sizeof(path), "/dev/vfio/%s", group);
    dev->vfio.group_fd = open(path, O_RDWR | O_CLOEXEC);
    if (dev->vfio.group_fd < 0) {
        int err = errno;
        if (err == EBUSY)
            return vfio_fail(why, why_cap, "%s is busy: another process (a vmgmt agent or another vmgmt-guest) holds the vfio group, and only one process can",
                             path);
        return vfio_fail(why, why_cap, "cannot open %s: %s", path, strerror(err));
    }
    struct vfio_group_status gs = { .argsz = sizeof(gs) };
    if (ioctl(dev->vfio.group_fd, VFIO_GROUP_GET_STATUS, &gs) < 0) {
        vfio_fail(why, why_cap, "VFIO_GROUP_GET_STATUS on %s failed: %s", path, strerror(errno));
        goto close_group;
    }
    if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        vfio_fail(why, why_cap, "IOMMU group %s is not viable: bind every device in /sys/kernel/iommu_groups/%s/devices to vfio-pci", group, group);
        goto close_group;
    }

    dev->vfio.container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (dev->vfio.container_fd < 0) {
        vfio_fail(why, why_cap, "cannot open /dev/vfio/vfio: %s", strerror(errno));
        goto close_group;
    }
    int api = ioctl(dev->vfio.container_fd, VFIO_GET_API_VERSION);
    if (api != VFIO_API_VERSION) {
        vfio_fail(why, why_cap, "/dev/vfio/vfio speaks API version %d, this driver needs %d", api, VFIO_API_VERSION);
        goto close_container;
    }
    unsigned long iommu_type = VFIO_TYPE1v2_IOMMU;
    if (ioctl(dev->vfio.container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
        iommu_type = VFIO_TYPE1_IOMMU;
        if (ioctl(dev->vfio.container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) <= 0) {
            vfio_fail(why, why_cap, "the vfio container supports neither TYPE1v2 nor TYPE1 IOMMUs (modprobe vfio_iommu_type1)");
            goto close_container;
        }
    }
    if (ioctl(dev->vfio.group_fd, VFIO_GROUP_SET_CONTAINER, &dev->vfio.container_fd) < 0) {
        vfio_fail(why, why_cap, "VFIO_GROUP_SET_CONTAINER failed: %s", strerror(errno));
        goto close_container;
    }
    if (ioctl(dev->vfio.container_fd, VFIO_SET_IOMMU, iommu_type) < 0) {
        vfio_fail(why, why_cap, "VFIO_SET_IOMMU(%s) failed: %s", iommu_type == VFIO_TYPE1v2_IOMMU ? "TYPE1v2" : "TYPE1", strerror(errno));
        goto close_container;
    }
    dev->vfio.device_fd = ioctl(dev->vfio.group_fd, VFIO_GROUP_GET_DEVICE_FD, dev->bdf);
    if (dev->vfio.device_fd < 0) {
        vfio_fail(why, why_cap, "VFIO_GROUP_GET_DEVICE_FD(%s) failed: %s", dev->bdf, strerror(errno));
        goto close_container;
    }
    if (vfio_enable_bus_master(dev, why, why_cap) || vfio_set_msix(dev, why, why_cap))
        goto close_device;
    report_verbose(dev->verbose, "vfio: group %s, %s IOMMU, MSI-X vector %d -> eventfd%s", group,
                   iommu_type == VFIO_TYPE1v2_IOMMU ? "TYPE1v2" : "TYPE1", VMGMT_VECTOR_RING,
                   dev->vfio.irq_count > 1 ? ", config vector too" : "");
    return 0;

close_device:
    vfio_close(dev);
    return -1;
close_container:
    close(dev->vfio.container_fd);
    dev->vfio.container_fd = -1;
close_group:
    close(dev->vfio.group_fd);
    dev->vfio.group_fd = -1;
    return -1;
}

static int vfio_map_region(struct vmgmt_dev *dev, unsigned index, void **out, size_t *out_bytes)
{
    struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };
    if (ioctl(dev->vfio.device_fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
        return report_error(REPORT_EXIT_SYSTEM, "VFIO_DEVICE_GET_REGION_INFO(BAR%u) on %s failed: %s", index, dev->bdf, strerror(errno));
    if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP))
        return report_error(REPORT_EXIT_SYSTEM, "vfio does not allow mmap of BAR%u of %s (flags 0x%x); use --wait poll to map it from sysfs",
                            index, dev->bdf, ri.flags);
    void *p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->vfio.device_fd, (off_t)ri.offset);
    if (p == MAP_FAILED)
        return report_error(REPORT_EXIT_SYSTEM, "mmap of BAR%u (%" PRIu64 " bytes) through vfio failed: %s", index, (uint64_t)ri.size,
                            strerror(errno));
    *out = p;
    *out_bytes = ri.size;
    return REPORT_EXIT_OK;
}

int vfio_map_bars(struct vmgmt_dev *dev)
{
    void *bar0, *bar2;
    int rc = vfio_map_region(dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0, &dev->bar0_map_bytes);
    if (rc)
        return rc;
    rc = vfio_map_region(dev, VFIO_PCI_BAR2_REGION_INDEX, &bar2, &dev->bar2_map_bytes);
    if (rc) {
        munmap(bar0, dev->bar0_map_bytes);
        return rc;
    }
    dev->bar0 = bar0;
    dev->bar2 = bar2;
    dev->bar_source = "vfio";
    return REPORT_EXIT_OK;
}

void vfio_close(struct vmgmt_dev *dev)
{
    if (dev->vfio.device_fd >= 0 && dev->vfio.irq_count) {
        struct vfio_irq_set set = {
            .argsz = sizeof(set),
            .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            .index = VFIO_PCI_MSIX_IRQ_INDEX,
            .start = 0,
            .count = 0,
        };
        ioctl(dev->vfio.device_fd, VFIO_DEVICE_SET_IRQS, &set);
        dev->vfio.irq_count = 0;
    }
    for (int i = 0; i < 2; i++) {
        if (dev->vfio.irq_fd[i] >= 0)
            close(dev->vfio.irq_fd[i]);
        dev->vfio.irq_fd[i] = -1;
    }
    int *fds[] = { &dev->vfio.device_fd, &dev->vfio.container_fd, &dev->vfio.group_fd };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}
