#include "pci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "report.h"
#include "sysfs.h"

static int pci_compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int pci_is_vmgmt(const char *bdf)
{
    char path[320];
    unsigned long long vendor, device;
    if ((size_t)snprintf(path, sizeof(path), PCI_SYSFS_DEVICES "/%s/vendor", bdf) >= sizeof(path) || sysfs_read_u64(path, &vendor))
        return 0;
    if ((size_t)snprintf(path, sizeof(path), PCI_SYSFS_DEVICES "/%s/device", bdf) >= sizeof(path) || sysfs_read_u64(path, &device))
        return 0;
    return vendor == VMGMT_PCI_VENDOR && device == VMGMT_PCI_DEVICE;
}

/* Reads BAR sizes from the "resource" file: one "start end flags" line per resource. */
static int pci_read_bar_sizes(struct vmgmt_dev *dev)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/resource", dev->sysfs_dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return report_error(REPORT_EXIT_SYSTEM, "cannot open %s: %s (is sysfs mounted on /sys?)", path, strerror(errno));
    unsigned long long start, end, flags;
    for (int bar = 0; bar <= 2 && fscanf(f, "%llx %llx %llx", &start, &end, &flags) == 3; bar++) {
        uint64_t size = end > start ? end - start + 1 : 0;
        if (bar == 0)
            dev->bar0_size = size;
        else if (bar == 2)
            dev->bar2_size = size;
    }
    fclose(f);
    if (dev->bar0_size < VMGMT_BAR0_DOORBELL + 4)
        return report_error(REPORT_EXIT_DEVICE_INVALID,
                            "device %s has a %" PRIu64 "-byte BAR0, too small for the ivshmem registers (need %d bytes; is it really an ivshmem device?)",
                            dev->bdf, dev->bar0_size, VMGMT_BAR0_DOORBELL + 4);
    if (dev->bar2_size == 0)
        return report_error(REPORT_EXIT_DEVICE_INVALID,
                            "device %s has no BAR2 (shared memory); start QEMU with ivshmem-doorbell or ivshmem-plain and a memory backend",
                            dev->bdf);
    return REPORT_EXIT_OK;
}

int pci_find(struct vmgmt_dev *dev, const char *want_bdf)
{
    DIR *dir = opendir(PCI_SYSFS_DEVICES);
    if (!dir)
        return report_error(REPORT_EXIT_NO_DEVICE, "no management device: cannot list " PCI_SYSFS_DEVICES ": %s (is sysfs mounted on /sys?)",
                            strerror(errno));
    char *found[64];
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && count < sizeof(found) / sizeof(found[0])) {
        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(dev->bdf) || !pci_is_vmgmt(de->d_name))
            continue;
        found[count] = strdup(de->d_name);
        if (found[count])
            count++;
    }
    closedir(dir);
    qsort(found, count, sizeof(found[0]), pci_compare_names);

    const char *pick = NULL;
    for (size_t i = 0; i < count; i++) {
        if (!want_bdf || strcmp(found[i], want_bdf) == 0) {
            pick = found[i];
            break;
        }
    }
    int rc = REPORT_EXIT_OK;
    if (!pick && want_bdf)
        rc = report_error(REPORT_EXIT_NO_DEVICE, "no management device: %s is not a PCI device %04x:%04x (%zu such device%s found; omit --device or use one of them)",
                          want_bdf, VMGMT_PCI_VENDOR, VMGMT_PCI_DEVICE, count, count == 1 ? "" : "s");
    else if (!pick)
        rc = report_error(REPORT_EXIT_NO_DEVICE, "no management device: no PCI device %04x:%04x in " PCI_SYSFS_DEVICES " (start the VM with the vmgmt device)",
                          VMGMT_PCI_VENDOR, VMGMT_PCI_DEVICE);
    else {
        if (count > 1 && !want_bdf)
            report_verbose(dev->verbose, "%zu devices %04x:%04x found; using %s (select another with --device)", count,
                           VMGMT_PCI_VENDOR, VMGMT_PCI_DEVICE, pick);
        snprintf(dev->bdf, sizeof(dev->bdf), "%s", pick);
        snprintf(dev->sysfs_dir, sizeof(dev->sysfs_dir), PCI_SYSFS_DEVICES "/%s", pick);
    }
    for (size_t i = 0; i < count; i++)
        free(found[i]);
    if (rc != REPORT_EXIT_OK)
        return rc;
    return pci_read_bar_sizes(dev);
}

static int pci_explain_mmap_error(const struct vmgmt_dev *dev, const char *path, int err)
{
    if (err == EINVAL) {
        char driver[64];
        sysfs_link_name(dev->sysfs_dir, "driver", driver, sizeof(driver));
        if (strcmp(driver, "vfio-pci") == 0)
            return report_error(REPORT_EXIT_SYSTEM,
                                "mmap of %s refused (EINVAL): the device is bound to vfio-pci and a process holding it through vfio has claimed its BARs; stop that process or run this command through it",
                                path);
    }
    if (err == EPERM) {
        char lockdown[128] = "";
        if (sysfs_read("/sys/kernel/security/lockdown", lockdown, sizeof(lockdown)) == 0)
            return report_error(REPORT_EXIT_SYSTEM,
                                "mmap of %s refused (EPERM): the kernel is in lockdown mode (%s), as under Secure Boot, and forbids mapping PCI BARs from sysfs; boot without lockdown (disable Secure Boot or use lockdown=none where allowed)",
                                path, lockdown);
        return report_error(REPORT_EXIT_SYSTEM,
                            "mmap of %s refused (EPERM): a kernel in Secure Boot lockdown forbids mapping PCI BARs from sysfs; boot without lockdown, and run as root",
                            path);
    }
    return report_error(REPORT_EXIT_SYSTEM, "mmap of %s failed: %s", path, strerror(err));
}

static int pci_map_resource(struct vmgmt_dev *dev, int bar, uint64_t size, bool quiet, void **out, size_t *out_bytes)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/resource%d", dev->sysfs_dir, bar);
    int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (quiet) {
            report_verbose(dev->verbose, "cannot open %s: %s", path, strerror(err));
            return REPORT_EXIT_SYSTEM;
        }
        if (err == EACCES || err == EPERM)
            return report_error(REPORT_EXIT_SYSTEM, "cannot open %s: %s (run vmgmt-guest as root)", path, strerror(err));
        return report_error(REPORT_EXIT_SYSTEM, "cannot open %s: %s (does BAR%d exist on device %s?)", path, strerror(err), bar, dev->bdf);
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t bytes = (size_t)((size + (uint64_t)page - 1) & ~((uint64_t)page - 1));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED && quiet) {
        report_verbose(dev->verbose, "mmap of %s failed: %s", path, strerror(err));
        return REPORT_EXIT_SYSTEM;
    }
    if (p == MAP_FAILED)
        return pci_explain_mmap_error(dev, path, err);
    *out = p;
    *out_bytes = bytes;
    return REPORT_EXIT_OK;
}

int pci_map_sysfs(struct vmgmt_dev *dev, bool quiet)
{
    void *bar0, *bar2;
    int rc = pci_map_resource(dev, 0, dev->bar0_size, quiet, &bar0, &dev->bar0_map_bytes);
    if (rc)
        return rc;
    rc = pci_map_resource(dev, 2, dev->bar2_size, quiet, &bar2, &dev->bar2_map_bytes);
    if (rc) {
        munmap(bar0, dev->bar0_map_bytes);
        return rc;
    }
    dev->bar0 = bar0;
    dev->bar2 = bar2;
    dev->bar_source = "sysfs";
    return REPORT_EXIT_OK;
}

void pci_unmap(struct vmgmt_dev *dev)
{
    if (dev->bar2)
        munmap(dev->bar2, dev->bar2_map_bytes);
    if (dev->bar0)
        munmap((void *)dev->bar0, dev->bar0_map_bytes);
    dev->bar0 = NULL;
    dev->bar2 = NULL;
    dev->hdr = NULL;
}
