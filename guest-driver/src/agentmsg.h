/* agentmsg: the requests the host starts on the agent's c2g ring (messages without RESPONSE_BIT), decoded
 * without I/O so a test can feed it bytes (test/agentmsg-test.c). The host is not trusted either: every
 * field is checked in a fixed order (header flags and status, type, payload size, reserved, direction,
 * path lengths against the payload, then each path) and a bad request gets the status the agent answers
 * with, plus the reason in words for its log. */
#ifndef VG_AGENTMSG_H
#define VG_AGENTMSG_H
#include <stdint.h>

#include "vmgmt_layout.h"

/* A copy to the guest writes <guest path>.vmgmt-tmp first and renames it over the guest path. */
#define AGENTMSG_TMP_SUFFIX ".vmgmt-tmp"
/* Longest guest path: with the suffix and a NUL it still fits PATH_MAX (4096). */
#define AGENTMSG_MAX_GUEST_PATH_BYTES (4096u - (uint32_t)sizeof(AGENTMSG_TMP_SUFFIX))

struct agentmsg_copy {
    uint32_t request_id;
    uint16_t type;                                       /* VMGMT_MSG_AGENT_COPY or VMGMT_MSG_AGENT_LIST */
    uint32_t direction;                                  /* VMGMT_AGENT_COPY_TO_GUEST or _FROM_GUEST */
    char host_path[VMGMT_MAX_PATH_BYTES + 1];            /* NUL-terminated; HOST_TRANSFER_PREFIX + token */
    char guest_path[AGENTMSG_MAX_GUEST_PATH_BYTES + 1];  /* NUL-terminated, absolute */
};

/* Decodes one host-started request. msg is the header copied out of the ring (msg->length already checked
 * against the slot), payload its msg->length bytes. Returns VMGMT_ST_OK and fills *out, or the status to
 * answer with and *why in words: UNKNOWN_TYPE (not AGENT_COPY), RESERVED_NONZERO (flags, status, reserved
 * or an unknown direction), BAD_LENGTH (payload shorter than the struct, or path lengths that do not add
 * up to it), BAD_PATH (empty, too long, a NUL, a host path outside HOST_TRANSFER_PREFIX, a relative guest
 * path), IS_DIRECTORY (a guest path ending in '/'). */
int32_t agentmsg_decode(const struct vmgmt_msg *msg, const uint8_t *payload, struct agentmsg_copy *out, const char **why);

/* Decodes an AGENT_MKDIR (struct vmgmt_agent_mkdir + path) into path (NUL-terminated, absolute) and *mode.
 * Returns VMGMT_ST_OK or the status to answer with, and *why in words. */
int32_t agentmsg_decode_mkdir(const struct vmgmt_msg *msg, const uint8_t *payload, char *path, uint32_t path_cap, uint32_t *mode, const char **why);

/* "to-guest", "from-guest" or "unknown". */
const char *agentmsg_direction_name(uint32_t direction);

#endif
