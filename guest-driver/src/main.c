/* vmgmt-guest: the guest side of the vmgmt management device. Command line only; the work is in the modules. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "dev.h"
#include "device.h"
#include "info.h"
#include "pci.h"
#include "ping.h"
#include "report.h"
#include "signals.h"
#include "vfio.h"

#define MAIN_MAX_PINGS 10000000u
#define MAIN_MAX_TIMEOUT_MS 3600000u

static const char main_usage[] =
    "usage: vmgmt-guest <command> [options]\n"
    "\n"
    "commands:\n"
    "  info [--json]                       show the device, its header and its channels\n"
    "  ping [-n N] [-t TIMEOUT_MS] [--wait auto|msix|poll] [--spin-us US]\n"
    "                                      N round trips through the management core (default 1, 2000 ms each);\n"
    "                                      a waiter spins US microseconds (default 30) before it blocks\n"
    "  help                                this text\n"
    "\n"
    "options for every command:\n"
    "  -d, --device BDF                    use this PCI device (default: the first 1af4:1110)\n"
    "  -v, --verbose                       say what the driver does (vfio, resets, channel)\n"
    "\n"
    "exit codes: 0 ok, 1 system error, 2 usage, 3 no device, 4 device invalid, 5 timeout,\n"
    "            6 error status or protocol violation from the core, 7 no free channel\n";

enum main_wait_choice { MAIN_WAIT_AUTO, MAIN_WAIT_MSIX, MAIN_WAIT_POLL };

struct main_options {
    const char *command;
    const char *bdf;
    bool verbose;
    bool json;
    struct ping_options ping;
    enum main_wait_choice wait;
    uint32_t spin_us;
};

static int main_usage_error(const char *fmt, const char *value)
{
    fputs("vmgmt-guest: ", stderr);
    fprintf(stderr, fmt, value);
    fputs(" (see vmgmt-guest help)\n", stderr);
    return REPORT_EXIT_USAGE;
}

static int main_parse_u32(const char *text, const char *what, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || v < min || v > max) {
        fprintf(stderr, "vmgmt-guest: %s '%s' is not a whole number between %u and %u (see vmgmt-guest help)\n", what, text, min, max);
        return REPORT_EXIT_USAGE;
    }
    *out = (uint32_t)v;
    return REPORT_EXIT_OK;
}

static int main_parse(int argc, char **argv, struct main_options *o)
{
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' }, { "json", no_argument, NULL, 'j' },
        { "count", required_argument, NULL, 'n' },  { "timeout", required_argument, NULL, 't' }, { "wait", required_argument, NULL, 'w' },
        { "spin-us", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
    };
    *o = (struct main_options){ .ping = { .count = 1, .timeout_ms = 2000 }, .wait = MAIN_WAIT_AUTO, .spin_us = DEV_DEFAULT_SPIN_NS / 1000 };
    if (argc < 2)
        return main_usage_error("missing command%s", "");
    o->command = argv[1];
    if (strcmp(o->command, "help") == 0 || strcmp(o->command, "--help") == 0 || strcmp(o->command, "-h") == 0)
        return REPORT_EXIT_OK;
    bool is_info = strcmp(o->command, "info") == 0, is_ping = strcmp(o->command, "ping") == 0;
    if (!is_info && !is_ping)
        return main_usage_error("unknown command '%s': use info, ping or help", o->command);
    optind = 2;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":d:vn:t:h", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (c) {
        case 'd': o->bdf = optarg; break;
        case 'v': o->verbose = true; break;
        case 'h': o->command = "help"; return REPORT_EXIT_OK;
        case 'j':
            if (!is_info)
                return main_usage_error("--json is an option of info, not of %s", o->command);
            o->json = true;
            break;
        case 'n':
        case 't':
        case 'w':
        case 's':
            if (!is_ping)
                return main_usage_error("-n, -t, --wait and --spin-us are options of ping, not of %s", o->command);
            if (c == 'n')
                rc = main_parse_u32(optarg, "ping count -n", 1, MAIN_MAX_PINGS, &o->ping.count);
            else if (c == 't')
                rc = main_parse_u32(optarg, "timeout -t (milliseconds)", 1, MAIN_MAX_TIMEOUT_MS, &o->ping.timeout_ms);
            else if (c == 's')
                rc = main_parse_u32(optarg, "spin time --spin-us (microseconds)", 0, 1000000, &o->spin_us);
            else if (strcmp(optarg, "auto") == 0)
                o->wait = MAIN_WAIT_AUTO;
            else if (strcmp(optarg, "msix") == 0)
                o->wait = MAIN_WAIT_MSIX;
            else if (strcmp(optarg, "poll") == 0)
                o->wait = MAIN_WAIT_POLL;
            else
                return main_usage_error("--wait '%s' is not one of auto, msix, poll", optarg);
            if (rc)
                return rc;
            break;
        case ':': return main_usage_error("option %s needs a value", argv[optind - 1]);
        default: return main_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return main_usage_error("unexpected argument '%s'", argv[optind]);
    return REPORT_EXIT_OK;
}

/* Opens vfio for MSI-X when the choice asks for it; decides dev->wait. */
static int main_setup_wait(struct vmgmt_dev *dev, enum main_wait_choice choice)
{
    dev->wait = DEV_WAIT_POLL;
    if (choice == MAIN_WAIT_POLL)
        return REPORT_EXIT_OK;
    char why[320];
    if (vfio_open(dev, why, sizeof(why)) == 0) {
        dev->wait = DEV_WAIT_MSIX;
        return REPORT_EXIT_OK;
    }
    if (choice == MAIN_WAIT_MSIX)
        return report_error(REPORT_EXIT_SYSTEM, "--wait msix: MSI-X is not available: %s; use --wait poll or --wait auto", why);
    report_verbose(dev->verbose, "MSI-X not available (%s); waiting by polling", why);
    return REPORT_EXIT_OK;
}

/* BARs from sysfs, even when we hold the device through vfio: mapping them through vfio would claim the BARs
 * and make the kernel refuse the sysfs mappings of every other (polling) process. The vfio regions are the
 * fallback when sysfs is refused (e.g. lockdown). */
static int main_map_bars(struct vmgmt_dev *dev)
{
    bool has_vfio = dev->vfio.device_fd >= 0;
    int rc = pci_map_sysfs(dev, has_vfio);
    if (rc == REPORT_EXIT_OK || !has_vfio)
        return rc;
    report_verbose(dev->verbose, "mapping the BARs through vfio instead of sysfs");
    return vfio_map_bars(dev);
}

static int main_run(const struct main_options *o)
{
    struct vmgmt_dev dev;
    dev_init_empty(&dev, o->verbose);
    dev.spin_ns = (uint64_t)o->spin_us * 1000u;
    int rc = pci_find(&dev, o->bdf);
    if (rc)
        return rc;
    bool is_ping = strcmp(o->command, "ping") == 0;
    if (is_ping) {
        signals_install();
        rc = main_setup_wait(&dev, o->wait);
        if (rc)
            return rc;
    }
    rc = main_map_bars(&dev);
    if (rc)
        goto close_vfio;
    report_verbose(dev.verbose, "device %s: BAR0 %llu bytes, BAR2 %llu bytes, mapped from %s", dev.bdf, (unsigned long long)dev.bar0_size,
                   (unsigned long long)dev.bar2_size, dev.bar_source);
    rc = device_validate(&dev);
    if (rc)
        goto unmap_bars;
    if (!is_ping) {
        rc = info_print(&dev, o->json);
        goto unmap_bars;
    }
    rc = device_init(&dev, o->ping.timeout_ms);
    if (rc)
        goto unmap_bars;
    struct channel ch;
    rc = channel_claim(&dev, &ch, o->ping.timeout_ms);
    if (rc)
        goto unmap_bars;
    report_verbose(dev.verbose, "ping: %u round trips on channel %u, peer id %u, wait=%s", o->ping.count, ch.index, dev.peer_id,
                   dev.wait == DEV_WAIT_MSIX ? "msix" : "poll");
    rc = ping_run(&ch, &o->ping);
    channel_release(&ch);
unmap_bars:
    pci_unmap(&dev);
close_vfio:
    vfio_close(&dev);
    return rc;
}

int main(int argc, char **argv)
{
    struct main_options o;
    int rc = main_parse(argc, argv, &o);
    if (rc)
        return rc;
    if (strcmp(o.command, "help") == 0) {
        fputs(main_usage, stdout);
        return REPORT_EXIT_OK;
    }
    rc = main_run(&o);
    signals_reraise();
    return rc;
}
