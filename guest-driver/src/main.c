/* vmgmt-guest: the guest side of the vmgmt management device. Command line only; the work is in the modules. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "bench.h"
#include "calc.h"
#include "chat.h"
#include "cli.h"
#include "debug.h"
#include "exec.h"
#include "filecmd.h"
#include "info.h"
#include "ping.h"
#include "report.h"
#include "session.h"
#include "signals.h"
#include "stats.h"
#include "update.h"

#define MAIN_MAX_PINGS 10000000u

static const char main_usage[] =
    "usage: vmgmt-guest <command> [options]\n"
    "\n"
    "commands:\n"
    "  info [--json]                       show the device, its header and its channels\n"
    "  ping [-n N] [-t TIMEOUT_MS] [--wait auto|relay|msix|poll] [--spin-us US]\n"
    "                                      N round trips through the management core (default 1, 2000 ms each);\n"
    "                                      a waiter spins US microseconds (default 30) before it blocks\n"
    "  file get HOSTPATH [LOCAL] [--resume] [--sha256] [-q]\n"
    "                                      copy a file from the VM's host root to LOCAL (default: its basename;\n"
    "                                      a directory gets the basename inside) through LOCAL.part;\n"
    "                                      --resume continues an interrupted get from the size of LOCAL.part\n"
    "  file put LOCAL HOSTPATH [--sha256] [-q]\n"
    "                                      copy a local file to the host root; it replaces HOSTPATH only when\n"
    "                                      complete (nothing is left on the host after an error or Ctrl-C)\n"
    "                                      get/put end with: <get|put>: bytes=N ms=T MBps=R sha256=<hex|skipped>;\n"
    "                                      --sha256 compares the host's sha256 with the local file's (exit 9 if they\n"
    "                                      differ); -q shows no progress\n"
    "  file ls [DIR] [--json]              list a directory of the host root (default: the root)\n"
    "  file stat PATH [--json]             type, size, permissions and modification time of PATH\n"
    "  file mkdir PATH [-m MODE]           create a directory (MODE octal, default 755; the host may mask it)\n"
    "  file rm PATH [--dir]                remove a file, or with --dir an empty directory\n"
    "                                      file options: -t TIMEOUT_MS per answer of the core (default 30000),\n"
    "                                      --wait and --spin-us as for ping\n"
    "  debug raw [--mode none|file|chat|stats] --type T [--flags F] [--length L] [--id I] [--status S] [--payload HEX]\n"
    "            [--wait-ms MS]            send ONE message with exactly these header fields (even a length larger\n"
    "                                      than the slot) and print the response or the channel's state change\n"
    "  debug poke-prod VALUE               publish VALUE as the g2c producer index (garbage) and print the\n"
    "                                      channel's state change; both wait --wait-ms (default 2000)\n"
    "  reset [-t TIMEOUT_MS]               reset the device through the core, even when its header is invalid\n"
    "                                      (the core rewrites it): every channel is freed, so processes using\n"
    "                                      one see errors and claim again; then the usual set-up. Prints\n"
    "                                      reset: device <BDF> ms=<T>\n"
    "  agent [--wait auto|msix|poll] [-t TIMEOUT_MS] [--poll-ms MS] [--idle-poll-ms MS]\n"
    "                                      the resident agent: serves the copies the host starts (vmgmt cp) on\n"
    "                                      a channel in agent mode; runs until SIGTERM; one line per copy on\n"
    "                                      stderr. Holds MSI-X and relays it to the other commands (wait=relay);\n"
    "                                      without vfio it polls every MS (default 2) for 10 s after a request,\n"
    "                                      then every idle MS (default 100); it also runs the stats loop on a\n"
    "                                      second channel (--no-stats: not)\n"
    "  chat register|listen NAME... [--json | -q] [--exec CMD | --echo]\n"
    "                                      register NAME(s) on one channel and print what arrives, one line\n"
    "                                      each (<vm>/<name> -> <to>: <text>) until SIGINT/SIGTERM; --exec\n"
    "                                      answers each call with CMD's stdout (call data on its stdin),\n"
    "                                      --echo with the call's own data (no process per call); -q prints\n"
    "                                      nothing of what arrives, and on exit how many messages it took\n"
    "  chat peers [--watch] [--json]       the peers this VM may talk to; --watch then prints join/leave events\n"
    "  chat send TARGET MESSAGE|- [--lines] [--from NAME]\n"
    "                                      TARGET is a name, host, or @ (this VM's chat group); - reads stdin\n"
    "                                      (with --lines, one message per line); exit 0 once delivered\n"
    "  chat call TARGET MESSAGE|- [--call-timeout MS] [--count N [--gap-ms MS]]\n"
    "                                      send and wait for the reply (default 10000 ms); prints the reply;\n"
    "                                      --count N calls N times and prints instead\n"
    "                                      call: n=N bytes=B reply_bytes=R min_us=.. median_us=.. p99_us=.. max_us=..\n"
    "                                      chat options: --wait and --spin-us as for ping\n"
    "  calc FUNCTION [ARGS] [-i IN] [-o OUT] [--hex]  the host computes FUNCTION (sha256, gzip, ..., --list) on stdin\n"
    "  stats push [--once] [--count N]    send records now (the agent sends one every interval the host sets)\n"
    "  stats demand 0..100|none [--for SECONDS] [--reason TEXT]\n"
    "                                      declare this guest's CPU demand; the host's scheduler reads it\n"
    "  stats share [--json]                the CPU share the host gives this guest now, and why\n"
    "  bench memcpy [--mib N] [--reps R]   memcpy throughput guest RAM -> the channel's data slice and back\n"
    "                                      (default 64 MiB, 3 reps after a warm-up); prints\n"
    "                                      memcpy: to_bar_MBps=X from_bar_MBps=Y bytes=N\n"
    "  bench tcp-echo [--port P] [--size B]\n"
    "                                      a TCP server that echoes what it gets (the chat bench's baseline);\n"
    "                                      with --size, whole B-byte messages, each answered with one send\n"
    "  bench tcp-rtt HOST[:PORT] [--size B] [-n N]\n"
    "                                      N round trips of B bytes (default 64) to a tcp-echo; prints\n"
    "                                      tcp-rtt: n=N bytes=B min_us=.. median_us=.. p99_us=.. max_us=..\n"
    "  --version                           print \"vmgmt-guest VERSION\" (the driver update checks it)\n"
    "  help                                this text\n"
    "\n"
    "options for every command:\n"
    "  -d, --device BDF                    use this PCI device (default: the first 1af4:1110)\n"
    "  -v, --verbose                       say what the driver does (vfio, resets, channel)\n"
    "\n"
    "paths on the host are relative to the VM's host root; absolute paths and paths that leave it are refused.\n"
    "\n"
    "exit codes: 0 ok, 1 system or local file error, 2 usage, 3 no device, 4 device invalid, 5 timeout,\n"
    "            6 error status, protocol violation or channel reset by the core, 7 no free channel,\n"
    "            8 the host refused the file operation, 9 integrity check (sha256) failed\n";

struct main_options {
    const char *command;
    struct cli_common common;
    bool json;
    struct ping_options ping;
};

static int main_parse(int argc, char **argv, struct main_options *o)
{
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' }, { "json", no_argument, NULL, 'j' },
        { "count", required_argument, NULL, 'n' },  { "timeout", required_argument, NULL, 't' }, { "wait", required_argument, NULL, 'w' },
        { "spin-us", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
    };
    *o = (struct main_options){ .ping = { .count = 1, .timeout_ms = 2000 },
                                .common = { .wait = CLI_WAIT_AUTO, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = 2000 } };
    if (argc < 2)
        return cli_usage_error("missing command%s", "");
    o->command = argv[1];
    if (strcmp(o->command, "help") == 0 || strcmp(o->command, "--help") == 0 || strcmp(o->command, "-h") == 0)
        return REPORT_EXIT_OK;
    bool is_info = strcmp(o->command, "info") == 0, is_ping = strcmp(o->command, "ping") == 0, is_reset = strcmp(o->command, "reset") == 0;
    if (!is_info && !is_ping && !is_reset)
        return cli_usage_error("unknown command '%s': use info, ping, reset, file, agent, chat, calc, stats, bench, debug or help", o->command);
    optind = 2;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":d:vn:t:h", longopts, NULL)) != -1) {
        int rc = REPORT_EXIT_OK;
        switch (c) {
        case 'd': o->common.bdf = optarg; break;
        case 'v': o->common.verbose = true; break;
        case 'h': o->command = "help"; return REPORT_EXIT_OK;
        case 'j':
            if (!is_info)
                return cli_usage_error("--json is an option of info, not of %s", o->command);
            o->json = true;
            break;
        case 't':
            if (!is_ping && !is_reset)
                return cli_usage_error("-t is an option of ping and reset, not of %s", o->command);
            rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &o->ping.timeout_ms);
            if (rc)
                return rc;
            break;
        case 'n':
        case 'w':
        case 's':
            if (!is_ping)
                return cli_usage_error("-n, --wait and --spin-us are options of ping, not of %s", o->command);
            if (c == 'n')
                rc = cli_parse_u32(optarg, "ping count -n", 1, MAIN_MAX_PINGS, &o->ping.count);
            else if (c == 's')
                rc = cli_parse_u32(optarg, "spin time --spin-us (microseconds)", 0, 1000000, &o->common.spin_us);
            else
                rc = cli_parse_wait(optarg, &o->common.wait);
            if (rc)
                return rc;
            break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    o->common.timeout_ms = o->ping.timeout_ms;
    return REPORT_EXIT_OK;
}

static int main_run(const struct main_options *o)
{
    if (strcmp(o->command, "reset") == 0)
        return session_reset_device(&o->common);
    bool is_ping = strcmp(o->command, "ping") == 0;
    if (is_ping)
        signals_install();
    struct session s;
    int rc = session_open(&s, &o->common, is_ping);
    if (rc)
        return rc;
    if (is_ping) {
        report_verbose(s.dev.verbose, "ping: %u round trips on channel %u, peer id %u, wait=%s", o->ping.count, s.ch.index, s.dev.peer_id,
                       dev_wait_name(s.dev.wait));
        rc = ping_run(&s.ch, &o->ping);
    } else {
        rc = info_print(&s.dev, o->json);
    }
    session_close(&s);
    return rc;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("vmgmt-guest %s\n", update_version());
        return REPORT_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "file") == 0) {
        rc = filecmd_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "debug") == 0) {
        rc = debug_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "agent") == 0) {
        rc = agent_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "chat") == 0) {
        rc = chat_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "calc") == 0) {
        rc = calc_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "stats") == 0) {
        rc = stats_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "bench") == 0) {
        rc = bench_main(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "exec-process") == 0) {
        rc = exec_process_main(argc, argv); /* started by the agent for `vmgmt vm exec` (exec.c) */
    } else {
        struct main_options o;
        rc = main_parse(argc, argv, &o);
        if (rc)
            return rc;
        if (strcmp(o.command, "help") == 0) {
            fputs(main_usage, stdout);
            return REPORT_EXIT_OK;
        }
        rc = main_run(&o);
    }
    signals_reraise();
    return rc;
}
