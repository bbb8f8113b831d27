#include "tcpbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "ping.h"
#include "report.h"

#define TCPBENCH_MAX_COUNT 10000000u

struct tcpbench_options {
    bool echo, size_given;
    const char *host;
    uint32_t port, size, count;
};

static int tcpbench_parse(int argc, char **argv, struct tcpbench_options *o)
{
    static const struct option longopts[] = {
        { "port", required_argument, NULL, 'p' }, { "size", required_argument, NULL, 's' }, { NULL, 0, NULL, 0 },
    };
    *o = (struct tcpbench_options){ .echo = strcmp(argv[2], "tcp-echo") == 0, .port = TCPBENCH_DEFAULT_PORT, .size = TCPBENCH_DEFAULT_SIZE, .count = 1000 };
    optind = 3;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":n:", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (c) {
        case 'p': rc = cli_parse_u32(optarg, "TCP port --port", 1, 65535, &o->port); break;
        case 's': rc = cli_parse_u32(optarg, "message size --size (bytes)", 1, TCPBENCH_MAX_SIZE, &o->size); o->size_given = true; break;
        case 'n': rc = cli_parse_u32(optarg, "round trips -n", 1, TCPBENCH_MAX_COUNT, &o->count); break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s' for bench tcp-echo/tcp-rtt", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (o->echo) {
        if (optind < argc)
            return cli_usage_error("bench tcp-echo takes no arguments, not '%s'", argv[optind]);
        return REPORT_EXIT_OK;
    }
    if (optind + 1 != argc)
        return cli_usage_error("bench tcp-rtt needs one HOST[:PORT]%s", "");
    static char host[64];
    snprintf(host, sizeof(host), "%s", argv[optind]);
    char *colon = strchr(host, ':');
    if (colon) {
        *colon = '\0';
        int rc = cli_parse_u32(colon + 1, "TCP port in HOST:PORT", 1, 65535, &o->port);
        if (rc)
            return rc;
    }
    o->host = host;
    return REPORT_EXIT_OK;
}

static int tcpbench_full(int fd, uint8_t *buf, uint32_t n, bool out)
{
    for (uint32_t at = 0; at < n;) {
        ssize_t r = out ? send(fd, buf + at, n - at, MSG_NOSIGNAL) : recv(fd, buf + at, n - at, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? 0 : -1;
        at += (uint32_t)r;
    }
    return 1;
}

static int tcpbench_echo(const struct tcpbench_options *o)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4) < 0)
        return report_error(REPORT_EXIT_SYSTEM, "bench tcp-echo: cannot listen on port %u: %s", o->port, strerror(errno));
    fprintf(stderr, "tcp-echo: listening on port %u\n", o->port);
    uint8_t *buf = malloc(o->size > 64 * 1024 ? o->size : 64 * 1024);
    if (!buf)
        return report_error(REPORT_EXIT_SYSTEM, "bench tcp-echo: out of memory");
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return report_error(REPORT_EXIT_SYSTEM, "bench tcp-echo: accept failed: %s", strerror(errno));
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* With --size, whole messages: read one, answer it with one send (as a request/reply server does). */
        for (;;) {
            ssize_t n;
            if (o->size_given) {
                n = tcpbench_full(fd, buf, o->size, false) > 0 ? (ssize_t)o->size : 0;
            } else {
                n = recv(fd, buf, 64 * 1024, 0);
                if (n < 0 && errno == EINTR)
                    continue;
            }
            if (n <= 0 || tcpbench_full(fd, buf, (uint32_t)n, true) <= 0)
                break;
        }
        close(fd);
    }
}

static int tcpbench_rtt(const struct tcpbench_options *o)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
    if (inet_pton(AF_INET, o->host, &a.sin_addr) != 1)
        return cli_usage_error("bench tcp-rtt: '%s' is not an IPv4 address", o->host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return report_error(REPORT_EXIT_SYSTEM, "bench tcp-rtt: cannot connect to %s:%u: %s (is bench tcp-echo running there?)", o->host, o->port, strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint8_t *out = malloc(o->size), *in = malloc(o->size);
    uint64_t *rtt_ns = calloc(o->count, sizeof(*rtt_ns));
    int rc = REPORT_EXIT_OK;
    if (!out || !in || !rtt_ns) {
        rc = report_error(REPORT_EXIT_SYSTEM, "bench tcp-rtt: out of memory for %u results of %u bytes", o->count, o->size);
        goto done;
    }
    for (uint32_t i = 0; i < o->size; i++)
        out[i] = (uint8_t)(i * 31u + 7u);
    for (uint32_t i = 0; i < o->count; i++) {
        out[0] = (uint8_t)i;
        uint64_t start = clock_now_ns();
        if (tcpbench_full(fd, out, o->size, true) <= 0 || tcpbench_full(fd, in, o->size, false) <= 0) {
            rc = report_error(REPORT_EXIT_SYSTEM, "bench tcp-rtt: round trip %u to %s:%u failed: %s", i + 1, o->host, o->port,
                              errno ? strerror(errno) : "connection closed");
            goto done;
        }
        rtt_ns[i] = clock_now_ns() - start;
        if (memcmp(in, out, o->size) != 0) {
            rc = report_error(REPORT_EXIT_PROTOCOL, "bench tcp-rtt: round trip %u came back different", i + 1);
            goto done;
        }
    }
    struct ping_stats st;
    ping_stats_compute(rtt_ns, o->count, &st);
    printf("tcp-rtt: n=%u bytes=%u min_us=%.1f median_us=%.1f p99_us=%.1f max_us=%.1f\n", o->count, o->size, (double)st.min_ns / 1000.0,
           (double)st.median_ns / 1000.0, (double)st.p99_ns / 1000.0, (double)st.max_ns / 1000.0);
done:
    free(rtt_ns);
    free(in);
    free(out);
    close(fd);
    return rc;
}

int tcpbench_main(int argc, char **argv)
{
    struct tcpbench_options o;
    int rc = tcpbench_parse(argc, argv, &o);
    if (rc)
        return rc;
    return o.echo ? tcpbench_echo(&o) : tcpbench_rtt(&o);
}
