/* dev: the state of one opened management device, passed to every module (there is no global one). */
#ifndef VG_DEV_H
#define VG_DEV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmgmt_layout.h"

#define DEV_DEFAULT_SPIN_NS 30000ull
#define DEV_DEFAULT_BACKOFF_MAX_NS 1000000ull

/* How a consumer blocks once spinning is over. */
enum dev_wait_method {
    DEV_WAIT_POLL,  /* adaptive sleep back-off, no interrupt */
    DEV_WAIT_MSIX,  /* the VECTOR_RING MSI-X interrupt, delivered through vfio-pci as an eventfd */
    DEV_WAIT_RELAY, /* the same interrupt, relayed by the agent that holds vfio (src/relay.h) */
};

struct relay_server;

/* Where a waiter blocks once it has published need_wakeup: a socket whose readable end means "go and look". */
struct dev_relay {
    int fd;                       /* a client's connection to the agent's relay, or the agent's own subscription; -1 */
    bool wanted;                  /* --wait auto in a command: while polling, look for a relay again once a second */
    uint64_t retry_ns;            /* the next such look */
    struct relay_server *server;  /* the agent's relay thread (then fd is its own subscription), or NULL */
};

struct dev_vfio {
    int container_fd;
    int group_fd;
    int device_fd;
    int irq_fd[2];      /* eventfds for VMGMT_VECTOR_RING and VMGMT_VECTOR_CONFIG; -1 when unset */
    unsigned irq_count; /* MSI-X vectors wired to irq_fd */
};

struct vmgmt_dev {
    char bdf[32];               /* e.g. 0000:00:03.0 */
    char sysfs_dir[96];         /* /sys/bus/pci/devices/<bdf> */
    uint64_t bar0_size;
    uint64_t bar2_size;
    volatile uint8_t *bar0;     /* ivshmem registers */
    uint8_t *bar2;              /* the shared region; struct vmgmt_header at 0 */
    size_t bar0_map_bytes;
    size_t bar2_map_bytes;
    const char *bar_source;     /* "sysfs" or "vfio": where the mappings came from */
    struct vmgmt_header geom;   /* validated copy of the header: geometry is read from here, never from BAR2 */
    struct vmgmt_header *hdr;   /* the live header in BAR2, for the fields that change (status, resets) */
    uint32_t peer_id;           /* IVPosition */
    uint64_t features;          /* feature bits in force (guest_features) */
    enum dev_wait_method wait;
    uint64_t spin_ns;           /* how long a waiter spins before it blocks */
    uint64_t backoff_max_ns;    /* polling: the longest sleep between two looks (the agent idles at 2 ms) */
    bool ignore_stop;           /* cleanup after SIGINT (discarding a put): waits run to their deadline */
    struct dev_vfio vfio;
    struct dev_relay relay;
    char wait_why[320];         /* why the wait method is not the better one (said in the agent's startup line) */
    bool verbose;
};

/* Sets every fd to -1 and every pointer to NULL. */
void dev_init_empty(struct vmgmt_dev *dev, bool verbose);

/* "poll", "msix" or "relay": what every command reports as wait=. */
const char *dev_wait_name(enum dev_wait_method method);

#endif
