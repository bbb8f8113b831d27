#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "signals.h"

#include "clock.h"
#include "device.h"
#include "pci.h"
#include "relay.h"
#include "report.h"
#include "update.h"
#include "vfio.h"
#include "wait.h"

/* The agent (o->owns_interrupts): vfio and the MSI-X eventfd, and the relay thread that forwards the interrupt
 * to the device's other processes; it subscribes itself, so its own waits block on the relay too. */
static int session_setup_agent_wait(struct vmgmt_dev *dev, enum cli_wait_choice choice)
{
    char why[256];
    if (choice == CLI_WAIT_RELAY)
        return report_error(REPORT_EXIT_USAGE, "the agent serves the relay and cannot wait on one: use --wait auto, msix or poll");
    if (vfio_open(dev, why, sizeof(why)) != 0) {
        if (choice == CLI_WAIT_MSIX)
            return report_error(REPORT_EXIT_SYSTEM, "--wait msix: MSI-X is not available: %s; use --wait poll or --wait auto", why);
        snprintf(dev->wait_why, sizeof(dev->wait_why), "MSI-X is not available: %s", why);
        report_verbose(dev->verbose, "%s; waiting by polling", dev->wait_why);
        return REPORT_EXIT_OK;
    }
    dev->wait = DEV_WAIT_MSIX;
    struct relay_server *server = calloc(1, sizeof(*server));
    int self_fd;
    if (!server || relay_server_start(server, RELAY_DIR, dev->bdf, dev->vfio.irq_fd[VMGMT_VECTOR_RING], &self_fd, why, sizeof(why)) != 0) {
        free(server);
        snprintf(dev->wait_why, sizeof(dev->wait_why), "no wake-up relay (%s): other commands poll", server ? why : "out of memory");
        return REPORT_EXIT_OK; /* the agent itself still blocks on the eventfd */
    }
    dev->relay.server = server;
    dev->relay.fd = self_fd;
    return REPORT_EXIT_OK;
}

bool session_retry_interrupts(struct vmgmt_dev *dev)
{
    if (dev->wait != DEV_WAIT_POLL || dev->vfio.device_fd >= 0 || !strstr(dev->wait_why, "is busy"))
        return false;
    char was[sizeof(dev->wait_why)];
    memcpy(was, dev->wait_why, sizeof(was));
    dev->wait_why[0] = 0;
    bool verbose = dev->verbose;
    dev->verbose = false;
    session_setup_agent_wait(dev, CLI_WAIT_AUTO);
    dev->verbose = verbose;
    if (dev->wait == DEV_WAIT_MSIX)
        return true;
    memcpy(dev->wait_why, was, sizeof(was));
    return false;
}

/* Decides dev->wait: the agent takes vfio (above); other commands take the agent's relay under auto and
 * relay, vfio only when --wait msix asks for it (a vfio group opens in one process only: a command holding it
 * would leave a starting agent polling). */
static int session_setup_wait(struct vmgmt_dev *dev, const struct cli_common *o)
{
    dev->wait = DEV_WAIT_POLL;
    enum cli_wait_choice choice = o->wait;
    if (choice == CLI_WAIT_POLL)
        return REPORT_EXIT_OK;
    if (o->owns_interrupts && o->adopt)
        return update_adopt_wait(dev, o->adopt);
    if (o->owns_interrupts)
        return session_setup_agent_wait(dev, choice);
    char why[256];
    if (choice == CLI_WAIT_AUTO || choice == CLI_WAIT_RELAY) {
        dev->relay.wanted = true; /* lost or not there yet: polling looks for it again once a second */
        int fd;
        if (relay_connect(RELAY_DIR, dev->bdf, &fd, why, sizeof(why)) == 0) {
            dev->relay.fd = fd;
            dev->wait = DEV_WAIT_RELAY;
            report_verbose(dev->verbose, "waiting on the agent's wake-up relay (" RELAY_DIR "/wake-%s.sock)", dev->bdf);
            return REPORT_EXIT_OK;
        }
        if (choice == CLI_WAIT_RELAY)
            return report_error(REPORT_EXIT_SYSTEM, "--wait relay: %s; use --wait auto or --wait poll", why);
        dev->relay.retry_ns = clock_now_ns() + WAIT_RELAY_RETRY_NS;
        report_verbose(dev->verbose, "%s; waiting by polling", why);
        return REPORT_EXIT_OK;
    }
    if (vfio_open(dev, why, sizeof(why)) != 0)
        return report_error(REPORT_EXIT_SYSTEM, "--wait msix: MSI-X is not available: %s; use --wait auto (the agent's relay) or --wait poll", why);
    dev->wait = DEV_WAIT_MSIX;
    return REPORT_EXIT_OK;
}

/* Stops the relay (its subscribers see EOF and poll) and closes our subscription. */
static void session_close_wait(struct vmgmt_dev *dev)
{
    if (dev->relay.server) {
        relay_server_stop(dev->relay.server);
        free(dev->relay.server);
        dev->relay.server = NULL;
    }
    if (dev->relay.fd >= 0)
        close(dev->relay.fd);
    dev->relay.fd = -1;
    vfio_close(dev);
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
        rc = session_setup_wait(dev, o);
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
    session_close_wait(dev);
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
    session_close_wait(&s->dev);
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
