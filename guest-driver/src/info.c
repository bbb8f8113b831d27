#include "info.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "device.h"
#include "report.h"
#include "sysfs.h"

static const char *info_mode_name(uint32_t mode)
{
    switch (mode) {
    case VMGMT_MODE_NONE: return "none";
    case VMGMT_MODE_FILE: return "file";
    case VMGMT_MODE_STATS: return "stats";
    case VMGMT_MODE_CHAT: return "chat";
    case VMGMT_MODE_CALC: return "calc";
    case VMGMT_MODE_AGENT: return "agent";
    default: return "unknown";
    }
}

/* Live fields are read once, atomically, so one line never mixes two moments. */
struct info_live {
    uint32_t device_status, reset_request, reset_done, core_generation;
    uint64_t guest_features;
};

static struct info_live info_read_live(const struct vmgmt_header *h)
{
    return (struct info_live){
        .device_status = __atomic_load_n(&h->device_status, __ATOMIC_ACQUIRE),
        .reset_request = __atomic_load_n(&h->reset_request, __ATOMIC_ACQUIRE),
        .reset_done = __atomic_load_n(&h->reset_done, __ATOMIC_ACQUIRE),
        .core_generation = __atomic_load_n(&h->core_generation, __ATOMIC_ACQUIRE),
        .guest_features = __atomic_load_n(&h->guest_features, __ATOMIC_ACQUIRE),
    };
}

static void info_print_text(const struct vmgmt_dev *dev, const char *driver, const struct info_live *live)
{
    const struct vmgmt_header *g = &dev->geom;
    char words[128];
    printf("device %s (%04x:%04x), driver %s, BARs mapped from %s\n", dev->bdf, VMGMT_PCI_VENDOR, VMGMT_PCI_DEVICE, driver, dev->bar_source);
    printf("  BAR0 %" PRIu64 " bytes, BAR2 %" PRIu64 " bytes, IVPosition (our peer id) %u\n", dev->bar0_size, dev->bar2_size, dev->peer_id);
    printf("header: version %u.%u, header_size %u, region_size %" PRIu64 ", core_peer_id %u, vectors %u, core_generation %u\n",
           g->version_major, g->version_minor, g->header_size, g->region_size, g->core_peer_id, g->vectors, live->core_generation);
    printf("  channels %u at offset %u, stride %u; rings of %u slots x %u bytes; data window %" PRIu64 " bytes at offset %" PRIu64 ", %u per channel\n",
           g->channel_count, g->channels_offset, g->channel_stride, g->ring_slots, g->slot_size, g->data_size, g->data_offset, g->data_slice_size);
    printf("  host_features 0x%" PRIx64 ", guest_features 0x%" PRIx64 "\n", g->host_features, live->guest_features);
    printf("  device_status 0x%x (%s), reset_request %u, reset_done %u\n", live->device_status,
           device_status_words(live->device_status, words, sizeof(words)), live->reset_request, live->reset_done);
    for (uint32_t i = 0; i < g->channel_count; i++) {
        const struct vmgmt_channel *c = (const struct vmgmt_channel *)(dev->bar2 + vmgmt_channel_offset(g, i));
        uint32_t owner = __atomic_load_n(&c->owner, __ATOMIC_ACQUIRE);
        uint32_t state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
        int32_t last = __atomic_load_n(&c->last_status, __ATOMIC_ACQUIRE);
        printf("channel %u: owner %u (%s), generation %u, state %s, mode %s, last_status %d (%s), error_count %u\n", i, owner,
               channel_owner_liveness(owner), __atomic_load_n(&c->generation, __ATOMIC_ACQUIRE), channel_state_name(state),
               info_mode_name(__atomic_load_n(&c->mode, __ATOMIC_ACQUIRE)), last, vmgmt_status_text(last),
               __atomic_load_n(&c->error_count, __ATOMIC_ACQUIRE));
    }
}

static void info_print_json(const struct vmgmt_dev *dev, const char *driver, const struct info_live *live)
{
    const struct vmgmt_header *g = &dev->geom;
    char words[128];
    printf("{\"bdf\":\"%s\",\"vendor\":\"%04x\",\"device\":\"%04x\",\"driver\":\"%s\",\"barSource\":\"%s\",", dev->bdf, VMGMT_PCI_VENDOR,
           VMGMT_PCI_DEVICE, driver, dev->bar_source);
    printf("\"bar0SizeBytes\":%" PRIu64 ",\"bar2SizeBytes\":%" PRIu64 ",\"ivPosition\":%u,", dev->bar0_size, dev->bar2_size, dev->peer_id);
    printf("\"header\":{\"magic\":%u,\"versionMajor\":%u,\"versionMinor\":%u,\"headerSizeBytes\":%u,\"regionSizeBytes\":%" PRIu64 ",", g->magic,
           g->version_major, g->version_minor, g->header_size, g->region_size);
    printf("\"channelCount\":%u,\"channelsOffset\":%u,\"channelStrideBytes\":%u,\"ringSlots\":%u,\"slotSizeBytes\":%u,", g->channel_count,
           g->channels_offset, g->channel_stride, g->ring_slots, g->slot_size);
    printf("\"dataOffset\":%" PRIu64 ",\"dataSizeBytes\":%" PRIu64 ",\"dataSliceSizeBytes\":%u,\"vectors\":%u,\"corePeerId\":%u,\"coreGeneration\":%u,", g->data_offset,
           g->data_size, g->data_slice_size, g->vectors, g->core_peer_id, live->core_generation);
    printf("\"hostFeatures\":%" PRIu64 ",\"guestFeatures\":%" PRIu64 ",\"deviceStatus\":%u,\"deviceStatusText\":\"%s\",", g->host_features,
           live->guest_features, live->device_status, device_status_words(live->device_status, words, sizeof(words)));
    printf("\"resetRequest\":%u,\"resetDone\":%u},\"channels\":[", live->reset_request, live->reset_done);
    for (uint32_t i = 0; i < g->channel_count; i++) {
        const struct vmgmt_channel *c = (const struct vmgmt_channel *)(dev->bar2 + vmgmt_channel_offset(g, i));
        uint32_t owner = __atomic_load_n(&c->owner, __ATOMIC_ACQUIRE);
        int32_t last = __atomic_load_n(&c->last_status, __ATOMIC_ACQUIRE);
        printf("%s{\"index\":%u,\"owner\":%u,\"ownerState\":\"%s\",\"generation\":%u,\"state\":\"%s\",\"mode\":\"%s\",\"lastStatus\":%d,\"lastStatusText\":\"%s\",\"errorCount\":%u}",
               i ? "," : "", i, owner, channel_owner_liveness(owner), __atomic_load_n(&c->generation, __ATOMIC_ACQUIRE),
               channel_state_name(__atomic_load_n(&c->state, __ATOMIC_ACQUIRE)), info_mode_name(__atomic_load_n(&c->mode, __ATOMIC_ACQUIRE)), last, vmgmt_status_text(last),
               __atomic_load_n(&c->error_count, __ATOMIC_ACQUIRE));
    }
    printf("]}\n");
}

int info_print(const struct vmgmt_dev *dev, bool json)
{
    char driver[64];
    sysfs_link_name(dev->sysfs_dir, "driver", driver, sizeof(driver));
    if (!driver[0])
        snprintf(driver, sizeof(driver), "none");
    struct info_live live = info_read_live(dev->hdr);
    if (json)
        info_print_json(dev, driver, &live);
    else
        info_print_text(dev, driver, &live);
    if (fflush(stdout) != 0)
        return report_error(REPORT_EXIT_SYSTEM, "writing to stdout failed");
    return REPORT_EXIT_OK;
}
