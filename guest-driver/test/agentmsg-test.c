/* Feeds src/agentmsg.c the AGENT_COPY requests a host could send, good and bad, and checks the status the
 * agent would answer with. Ends with "agentmsg: N passed, M failed". */
#include <stdio.h>
#include <string.h>

#include "agentmsg.h"

#define HOST_PATH VMGMT_HOST_TRANSFER_PREFIX "0123456789abcdef0123456789abcdef"

struct case_msg {
    struct vmgmt_msg msg;
    uint8_t payload[VMGMT_LIMIT_MAX_SLOT_BYTES];
};

/* A well-formed request; tests then spoil one field. */
static struct case_msg make(uint32_t direction, const char *host, uint32_t host_len, const char *guest, uint32_t guest_len)
{
    struct case_msg c;
    memset(&c, 0, sizeof(c));
    struct vmgmt_agent_copy req = { .direction = direction, .host_path_len = host_len, .guest_path_len = guest_len };
    memcpy(c.payload, &req, sizeof(req));
    memcpy(c.payload + sizeof(req), host, host_len);
    memcpy(c.payload + sizeof(req) + host_len, guest, guest_len);
    c.msg = (struct vmgmt_msg){ .type = VMGMT_MSG_AGENT_COPY, .length = (uint32_t)sizeof(req) + host_len + guest_len, .request_id = 7 };
    return c;
}

static struct case_msg good(const char *guest)
{
    return make(VMGMT_AGENT_COPY_TO_GUEST, HOST_PATH, (uint32_t)strlen(HOST_PATH), guest, (uint32_t)strlen(guest));
}

static int passed, failed;
static struct agentmsg_copy out;

static void expect(const char *name, struct case_msg c, int32_t want)
{
    const char *why = NULL;
    int32_t got = agentmsg_decode(&c.msg, c.payload, &out, &why);
    if (got == want && why) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "agentmsg-test: %s: status %d (%s), want %d\n", name, got, why ? why : "no reason", want);
}

static void set_u32(struct case_msg *c, size_t offset, uint32_t v)
{
    memcpy(c->payload + offset, &v, sizeof(v));
}

int main(void)
{
    struct case_msg c = good("/tmp/a.bin");
    expect("valid to-guest", c, VMGMT_ST_OK);
    if (strcmp(out.host_path, HOST_PATH) != 0 || strcmp(out.guest_path, "/tmp/a.bin") != 0 || out.request_id != 7 ||
        out.direction != VMGMT_AGENT_COPY_TO_GUEST) {
        failed++;
        fprintf(stderr, "agentmsg-test: valid to-guest: decoded host '%s' guest '%s' id %u direction %u\n", out.host_path, out.guest_path,
                out.request_id, out.direction);
    } else {
        passed++;
    }
    c = make(VMGMT_AGENT_COPY_FROM_GUEST, HOST_PATH, (uint32_t)strlen(HOST_PATH), "/x", 2);
    expect("valid from-guest", c, VMGMT_ST_OK);

    c = good("/tmp/a");
    c.msg.flags = 1;
    expect("flags set", c, VMGMT_ST_RESERVED_NONZERO);
    c = good("/tmp/a");
    c.msg.status = 3;
    expect("request with a status", c, VMGMT_ST_RESERVED_NONZERO);
    c = good("/tmp/a");
    c.msg.type = 0x0202;
    expect("unknown type", c, VMGMT_ST_UNKNOWN_TYPE);
    c = good("/tmp/a");
    c.msg.length = 15;
    expect("payload shorter than the struct", c, VMGMT_ST_BAD_LENGTH);
    c = good("/tmp/a");
    set_u32(&c, offsetof(struct vmgmt_agent_copy, reserved), 1);
    expect("reserved set", c, VMGMT_ST_RESERVED_NONZERO);
    c = good("/tmp/a");
    set_u32(&c, offsetof(struct vmgmt_agent_copy, direction), 3);
    expect("unknown direction", c, VMGMT_ST_RESERVED_NONZERO);
    c = good("/tmp/a");
    set_u32(&c, offsetof(struct vmgmt_agent_copy, direction), 0);
    expect("direction 0", c, VMGMT_ST_RESERVED_NONZERO);
    c = good("/tmp/a");
    c.msg.length += 1;
    expect("a byte more than the paths", c, VMGMT_ST_BAD_LENGTH);
    c = good("/tmp/a");
    c.msg.length -= 1;
    expect("a byte fewer than the paths", c, VMGMT_ST_BAD_LENGTH);
    c = good("/tmp/a");
    set_u32(&c, offsetof(struct vmgmt_agent_copy, host_path_len), 0xffffffffu);
    set_u32(&c, offsetof(struct vmgmt_agent_copy, guest_path_len), (uint32_t)strlen(HOST_PATH) + 6 + 1);
    expect("lengths that wrap around 2^32", c, VMGMT_ST_BAD_LENGTH);
    c = make(VMGMT_AGENT_COPY_TO_GUEST, HOST_PATH, (uint32_t)strlen(HOST_PATH), "", 0);
    expect("empty guest path", c, VMGMT_ST_BAD_PATH);
    c = make(VMGMT_AGENT_COPY_TO_GUEST, "", 0, "/tmp/a", 6);
    expect("empty host path", c, VMGMT_ST_BAD_PATH);
    c = make(VMGMT_AGENT_COPY_TO_GUEST, "data/a.bin", 10, "/tmp/a", 6);
    expect("host path outside the transfer prefix", c, VMGMT_ST_BAD_PATH);
    c = make(VMGMT_AGENT_COPY_TO_GUEST, VMGMT_HOST_TRANSFER_PREFIX, (uint32_t)strlen(VMGMT_HOST_TRANSFER_PREFIX), "/tmp/a", 6);
    expect("host path without a token", c, VMGMT_ST_BAD_PATH);
    c = make(VMGMT_AGENT_COPY_TO_GUEST, HOST_PATH, (uint32_t)strlen(HOST_PATH), "/tmp/a\0b", 8);
    expect("NUL in the guest path", c, VMGMT_ST_BAD_PATH);
    c = make(VMGMT_AGENT_COPY_TO_GUEST, HOST_PATH "\0", (uint32_t)strlen(HOST_PATH) + 1, "/tmp/a", 6);
    expect("NUL in the host path", c, VMGMT_ST_BAD_PATH);
    c = good("tmp/a");
    expect("relative guest path", c, VMGMT_ST_BAD_PATH);
    c = good("/tmp/dir/");
    expect("guest path ending in /", c, VMGMT_ST_IS_DIRECTORY);
    static char long_path[AGENTMSG_MAX_GUEST_PATH_BYTES + 2];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    struct vmgmt_msg m = { .type = VMGMT_MSG_AGENT_COPY, .length = 16 + 20 + AGENTMSG_MAX_GUEST_PATH_BYTES + 1 };
    static uint8_t big[16 + 20 + AGENTMSG_MAX_GUEST_PATH_BYTES + 1];
    struct vmgmt_agent_copy req = { .direction = 1, .host_path_len = 20, .guest_path_len = AGENTMSG_MAX_GUEST_PATH_BYTES + 1 };
    memcpy(big, &req, sizeof(req));
    memcpy(big + 16, HOST_PATH, 20);
    memcpy(big + 36, long_path, AGENTMSG_MAX_GUEST_PATH_BYTES + 1);
    const char *why;
    if (agentmsg_decode(&m, big, &out, &why) == VMGMT_ST_BAD_PATH) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "agentmsg-test: guest path longer than PATH_MAX allows was not BAD_PATH\n");
    }
    /* AGENT_LIST: the AGENT_COPY payload with direction FROM_GUEST; a guest path ending in '/' is a directory. */
    c = make(VMGMT_AGENT_COPY_FROM_GUEST, HOST_PATH, (uint32_t)strlen(HOST_PATH), "/tmp/dir/", 9);
    c.msg.type = VMGMT_MSG_AGENT_LIST;
    expect("valid AGENT_LIST of a path ending in /", c, VMGMT_ST_OK);
    if (out.type != VMGMT_MSG_AGENT_LIST) {
        failed++;
        fprintf(stderr, "agentmsg-test: AGENT_LIST decoded as type 0x%04x\n", out.type);
    } else {
        passed++;
    }
    c = make(VMGMT_AGENT_COPY_TO_GUEST, HOST_PATH, (uint32_t)strlen(HOST_PATH), "/tmp/dir", 8);
    c.msg.type = VMGMT_MSG_AGENT_LIST;
    expect("AGENT_LIST with direction TO_GUEST", c, VMGMT_ST_RESERVED_NONZERO);
    c = make(VMGMT_AGENT_COPY_FROM_GUEST, "data/x", 6, "/tmp/dir", 8);
    c.msg.type = VMGMT_MSG_AGENT_LIST;
    expect("AGENT_LIST to a host path outside the transfer prefix", c, VMGMT_ST_BAD_PATH);

    /* AGENT_MKDIR */
    {
        char path[64];
        uint32_t mode = 0;
        const char *why = NULL;
        struct case_msg k;
        memset(&k, 0, sizeof(k));
        struct vmgmt_agent_mkdir mk = { .mode = 0755, .path_len = 6 };
        memcpy(k.payload, &mk, sizeof(mk));
        memcpy(k.payload + sizeof(mk), "/tmp/d", 6);
        k.msg = (struct vmgmt_msg){ .type = VMGMT_MSG_AGENT_MKDIR, .length = (uint32_t)sizeof(mk) + 6, .request_id = 9 };
        int32_t st = agentmsg_decode_mkdir(&k.msg, k.payload, path, sizeof(path), &mode, &why);
        if (st == VMGMT_ST_OK && strcmp(path, "/tmp/d") == 0 && mode == 0755) passed++;
        else { failed++; fprintf(stderr, "agentmsg-test: valid AGENT_MKDIR: status %d path '%s' mode %o\n", st, path, mode); }
        struct { const char *name; uint32_t mode; uint32_t path_len; uint32_t length; const char *p; int32_t want; } bad[] = {
            { "AGENT_MKDIR path_len past the payload", 0755, 7, 8 + 6, "/tmp/d", VMGMT_ST_BAD_LENGTH },
            { "AGENT_MKDIR mode beyond 07777", 010000, 6, 8 + 6, "/tmp/d", VMGMT_ST_RESERVED_NONZERO },
            { "AGENT_MKDIR relative path", 0755, 5, 8 + 5, "tmp/d", VMGMT_ST_BAD_PATH },
            { "AGENT_MKDIR NUL in the path", 0755, 6, 8 + 6, "/tm\0/d", VMGMT_ST_BAD_PATH },
            { "AGENT_MKDIR empty path", 0755, 0, 8, "", VMGMT_ST_BAD_PATH },
            { "AGENT_MKDIR shorter than the struct", 0755, 0, 4, "", VMGMT_ST_BAD_LENGTH },
            { "AGENT_MKDIR path longer than the buffer", 0755, 64, 8 + 64, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", VMGMT_ST_BAD_PATH },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            memset(&k, 0, sizeof(k));
            mk = (struct vmgmt_agent_mkdir){ .mode = bad[i].mode, .path_len = bad[i].path_len };
            memcpy(k.payload, &mk, sizeof(mk));
            memcpy(k.payload + sizeof(mk), bad[i].p, bad[i].path_len);
            k.msg = (struct vmgmt_msg){ .type = VMGMT_MSG_AGENT_MKDIR, .length = bad[i].length, .request_id = 9 };
            st = agentmsg_decode_mkdir(&k.msg, k.payload, path, sizeof(path), &mode, &why);
            if (st == bad[i].want) passed++;
            else { failed++; fprintf(stderr, "agentmsg-test: %s: status %d (%s), want %d\n", bad[i].name, st, why, bad[i].want); }
        }
    }
    printf("agentmsg: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
