#include <inttypes.h>
#include <stdio.h>

#include "session.h"
#include "signals.h"

#include "clock.h"
#include "device.h"
#include "pci.h"
#include "report.h"
#include "vfio.h"

/* Opens vfio for MSI-X when the choice asks for it; decides dev->wait. */
static int session_setup_wait(struct vmgmt_dev *dev, enum cli_wait_choice choice)
{
    dev->wait = DEV_WAIT_POLL;
    if (choice == CLI_WAIT_POLL)
        return REPORT_EXIT_OK;
    char why[320];
    if (vfio_open(dev, why, sizeof(why)) == 0) {
        dev->wait = DEV_WAIT_MSIX;
        return REPORT_EXIT_OK;
    }
    if (choice == CLI_WAIT_MSIX)
        return report_error(REPORT_EXIT_SYSTEM, "--wait msix: MSI-X is not available: %s; use --wait poll or --wait auto", why);
    report_verbose(dev->verbose, "MSI-X not available (%s); waiting by polling", why);
    return REPORT_EXIT_OK;
}

/* BARs from sysfs, even when we hold the device through vfio: mapping them through vfio would claim the BARs
 * and make the kernel refuse the sysfs mappings of every other (polling) process. The vfio regions are the
 * fallback when sysfs is refused (e.g. lockdown). */
static int session_map_bars(struct vmgmt_dev *dev)
{
    bool has_vfio = dev->vfio.device_fd >= 0;
    int rc = pci_map_sysfs(dev, has_vfio);
    if (rc == REPORT_EXIT_OK || !has_vfio)
        return rc;
    report_verbose(dev->verbose, "mapping the BARs through vfio instead of sysfs");
    return vfio_map_bars(dev);
}

int session_open(struct session *s, const struct cli_common *o, bool talk)
{
    struct vmgmt_dev *dev = &s->dev;
    dev_init_empty(dev, o->verbose);
    s->ch.claimed = false;
    dev->spin_ns = (uint64_t)o->spin_us * 1000u;
    int rc = pci_find(dev, o->bdf);
    if (rc)
        return rc;
    if (talk) {
        rc = session_setup_wait(dev, o->wait);
        if (rc)
            return rc;
    }
    rc = session_map_bars(dev);
    if (rc)
        goto close_vfio;
    report_verbose(dev->verbose, "device %s: BAR0 %llu bytes, BAR2 %llu bytes, mapped from %s", dev->bdf, (unsigned long long)dev->bar0_size,
                   (unsigned long long)dev->bar2_size, dev->bar_source);
    rc = device_validate(dev);
    if (rc)
        goto unmap_bars;
    if (!talk)
        return REPORT_EXIT_OK;
    rc = device_init(dev, o->timeout_ms);
    if (rc)
        goto unmap_bars;
    rc = channel_claim(dev, &s->ch, o->timeout_ms);
    if (rc)
        goto unmap_bars;
    return REPORT_EXIT_OK;
unmap_bars:
    pci_unmap(dev);
close_vfio:
    vfio_close(dev);
    return rc;
}

int session_reset_device(const struct cli_common *o)
{
    struct vmgmt_dev dev;
    dev_init_empty(&dev, o->verbose);
    dev.spin_ns = (uint64_t)o->spin_us * 1000u;
    int rc = pci_find(&dev, o->bdf);
    if (rc)
        return rc;
    rc = pci_map_sysfs(&dev, false);
    if (rc)
        return rc;
    uint64_t start_ns = clock_now_ns();
    rc = device_reset_unchecked(&dev, o->timeout_ms);
    if (!rc)
        rc = device_validate(&dev);
    if (!rc)
        rc = device_init(&dev, o->timeout_ms);
    if (!rc)
        printf("reset: device %s ms=%" PRIu64 "\n", dev.bdf, (clock_now_ns() - start_ns) / 1000000u);
    pci_unmap(&dev);
    return rc;
}

void session_close(struct session *s)
{
    channel_release(&s->ch);
    pci_unmap(&s->dev);
    vfio_close(&s->dev);
}

int session_run(const struct cli_common *o, int (*body)(struct session *s, void *ctx), void *ctx)
{
    signals_install();
    struct session s;
    int rc = session_open(&s, o, true);
    if (rc)
        return rc;
    rc = body(&s, ctx);
    if (fflush(stdout) != 0 && !rc)
        rc = report_error(REPORT_EXIT_SYSTEM, "writing to stdout failed");
    session_close(&s);
    return rc;
}
