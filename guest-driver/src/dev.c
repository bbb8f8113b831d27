#include "dev.h"

#include <string.h>

void dev_init_empty(struct vmgmt_dev *dev, bool verbose)
{
    memset(dev, 0, sizeof(*dev));
    dev->vfio.container_fd = -1;
    dev->vfio.group_fd = -1;
    dev->vfio.device_fd = -1;
    dev->vfio.irq_fd[0] = -1;
    dev->vfio.irq_fd[1] = -1;
    dev->relay.fd = -1;
    dev->wait = DEV_WAIT_POLL;
    dev->spin_ns = DEV_DEFAULT_SPIN_NS;
    dev->backoff_max_ns = DEV_DEFAULT_BACKOFF_MAX_NS;
    dev->verbose = verbose;
}

const char *dev_wait_name(enum dev_wait_method method)
{
    switch (method) {
    case DEV_WAIT_MSIX: return "msix";
    case DEV_WAIT_RELAY: return "relay";
    default: return "poll";
    }
}
