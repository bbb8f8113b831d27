#include "agentmsg.h"

#include <string.h>

const char *agentmsg_direction_name(uint32_t direction)
{
    switch (direction) {
    case VMGMT_AGENT_COPY_TO_GUEST: return "to-guest";
    case VMGMT_AGENT_COPY_FROM_GUEST: return "from-guest";
    default: return "unknown";
    }
}

static int32_t agentmsg_refuse(int32_t status, const char *reason, const char **why)
{
    *why = reason;
    return status;
}

int32_t agentmsg_decode(const struct vmgmt_msg *msg, const uint8_t *payload, struct agentmsg_copy *out, const char **why)
{
    *why = "ok";
    if (msg->flags != 0)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "the message flags are not zero", why);
    if (msg->status != 0)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "a request carries a non-zero status", why);
    if (msg->type != VMGMT_MSG_AGENT_COPY && msg->type != VMGMT_MSG_AGENT_LIST)
        return agentmsg_refuse(VMGMT_ST_UNKNOWN_TYPE, "the agent queues AGENT_COPY (0x0201) and AGENT_LIST (0x0205) only", why);
    struct vmgmt_agent_copy req;
    if (msg->length < sizeof(req))
        return agentmsg_refuse(VMGMT_ST_BAD_LENGTH, "the payload is shorter than struct vmgmt_agent_copy (16 bytes)", why);
    memcpy(&req, payload, sizeof(req));
    if (req.reserved != 0)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "vmgmt_agent_copy.reserved is not zero", why);
    if (req.direction != VMGMT_AGENT_COPY_TO_GUEST && req.direction != VMGMT_AGENT_COPY_FROM_GUEST)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "the direction is neither TO_GUEST (1) nor FROM_GUEST (2)", why);
    if ((uint64_t)req.host_path_len + req.guest_path_len != (uint64_t)msg->length - sizeof(req))
        return agentmsg_refuse(VMGMT_ST_BAD_LENGTH, "host_path_len + guest_path_len differ from the bytes after the struct", why);
    if (msg->type == VMGMT_MSG_AGENT_LIST && req.direction != VMGMT_AGENT_COPY_FROM_GUEST)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "an AGENT_LIST's direction is not FROM_GUEST (2)", why);
    if (req.host_path_len == 0 || req.guest_path_len == 0)
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "a path is empty", why);
    if (req.host_path_len > VMGMT_MAX_PATH_BYTES)
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the host path is longer than MAX_PATH_BYTES (4096)", why);
    if (req.guest_path_len > AGENTMSG_MAX_GUEST_PATH_BYTES)
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the guest path is too long for PATH_MAX with the .vmgmt-tmp suffix", why);
    const uint8_t *host = payload + sizeof(req), *guest = host + req.host_path_len;
    if (memchr(host, '\0', req.host_path_len) || memchr(guest, '\0', req.guest_path_len))
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "a path contains a NUL byte", why);
    const size_t prefix = sizeof(VMGMT_HOST_TRANSFER_PREFIX) - 1;
    if (req.host_path_len <= prefix || memcmp(host, VMGMT_HOST_TRANSFER_PREFIX, prefix) != 0)
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the host path is not a transfer path (" VMGMT_HOST_TRANSFER_PREFIX "<token>)", why);
    if (guest[0] != '/')
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the guest path is not absolute", why);
    if (msg->type == VMGMT_MSG_AGENT_COPY && guest[req.guest_path_len - 1] == '/')
        return agentmsg_refuse(VMGMT_ST_IS_DIRECTORY, "the guest path ends in '/': it names a directory, not a file", why);
    out->request_id = msg->request_id;
    out->type = msg->type;
    out->direction = req.direction;
    memcpy(out->host_path, host, req.host_path_len);
    out->host_path[req.host_path_len] = '\0';
    memcpy(out->guest_path, guest, req.guest_path_len);
    out->guest_path[req.guest_path_len] = '\0';
    return VMGMT_ST_OK;
}

int32_t agentmsg_decode_mkdir(const struct vmgmt_msg *msg, const uint8_t *payload, char *path, uint32_t path_cap, uint32_t *mode, const char **why)
{
    *why = "ok";
    if (msg->flags != 0 || msg->status != 0)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "the message flags or status are not zero", why);
    struct vmgmt_agent_mkdir req;
    if (msg->length < sizeof(req))
        return agentmsg_refuse(VMGMT_ST_BAD_LENGTH, "the payload is shorter than struct vmgmt_agent_mkdir (8 bytes)", why);
    memcpy(&req, payload, sizeof(req));
    if ((uint64_t)req.path_len != (uint64_t)msg->length - sizeof(req))
        return agentmsg_refuse(VMGMT_ST_BAD_LENGTH, "path_len differs from the bytes after the struct", why);
    if (req.path_len == 0 || req.path_len >= path_cap)
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the path is empty or longer than PATH_MAX", why);
    if (req.mode > 07777u)
        return agentmsg_refuse(VMGMT_ST_RESERVED_NONZERO, "mode has bits beyond 07777", why);
    const uint8_t *p = payload + sizeof(req);
    if (memchr(p, '\0', req.path_len))
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the path contains a NUL byte", why);
    if (p[0] != '/')
        return agentmsg_refuse(VMGMT_ST_BAD_PATH, "the path is not absolute", why);
    memcpy(path, p, req.path_len);
    path[req.path_len] = '\0';
    *mode = req.mode;
    return VMGMT_ST_OK;
}
