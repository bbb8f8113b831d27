#include "filecmd.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fileop.h"
#include "report.h"
#include "session.h"
#include "signals.h"
#include "transfer.h"

#define FILECMD_DEFAULT_TIMEOUT_MS 30000u
#define FILECMD_MAX_POSITIONALS 2

enum filecmd_sub { FILECMD_GET, FILECMD_PUT, FILECMD_LS, FILECMD_STAT, FILECMD_MKDIR, FILECMD_RM };

struct filecmd_options {
    struct cli_common common;
    enum filecmd_sub sub;
    const char *name;                             /* "get", ... */
    const char *arg[FILECMD_MAX_POSITIONALS];
    int arg_count;
    struct transfer_options transfer;
    bool json;
    uint32_t mode;                                /* mkdir -m */
    bool dir;                                     /* rm --dir */
};

static const struct {
    const char *name;
    enum filecmd_sub sub;
    int min_args, max_args;
    const char *allowed;                          /* long options besides the common ones */
} filecmd_subs[] = {
    { "get", FILECMD_GET, 1, 2, "resume sha256 quiet" },
    { "put", FILECMD_PUT, 2, 2, "sha256 quiet" },
    { "ls", FILECMD_LS, 0, 1, "json" },
    { "stat", FILECMD_STAT, 1, 1, "json" },
    { "mkdir", FILECMD_MKDIR, 1, 1, "mode" },
    { "rm", FILECMD_RM, 1, 1, "dir" },
};

static bool filecmd_allows(const char *allowed, const char *option)
{
    size_t n = strlen(option);
    for (const char *p = strstr(allowed, option); p; p = strstr(p + 1, option))
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static int filecmd_parse(int argc, char **argv, struct filecmd_options *o)
{
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' },     { "timeout", required_argument, NULL, 't' },
        { "wait", required_argument, NULL, 'w' },   { "spin-us", required_argument, NULL, 's' }, { "resume", no_argument, NULL, 'r' },
        { "sha256", no_argument, NULL, 'S' },       { "quiet", no_argument, NULL, 'q' },         { "json", no_argument, NULL, 'j' },
        { "mode", required_argument, NULL, 'm' },   { "dir", no_argument, NULL, 'D' },           { NULL, 0, NULL, 0 },
    };
    *o = (struct filecmd_options){ .common = { .wait = CLI_WAIT_AUTO, .spin_us = DEV_DEFAULT_SPIN_NS / 1000, .timeout_ms = FILECMD_DEFAULT_TIMEOUT_MS },
                                   .mode = 0755 };
    if (argc < 3)
        return cli_usage_error("file needs a subcommand%s: get, put, ls, stat, mkdir or rm", "");
    size_t which = sizeof(filecmd_subs) / sizeof(filecmd_subs[0]);
    for (size_t i = 0; i < sizeof(filecmd_subs) / sizeof(filecmd_subs[0]); i++)
        if (strcmp(argv[2], filecmd_subs[i].name) == 0)
            which = i;
    if (which == sizeof(filecmd_subs) / sizeof(filecmd_subs[0]))
        return cli_usage_error("unknown file subcommand '%s': use get, put, ls, stat, mkdir or rm", argv[2]);
    o->sub = filecmd_subs[which].sub;
    o->name = filecmd_subs[which].name;
    optind = 3;
    opterr = 0;
    int c, index;
    while ((c = getopt_long(argc, argv, ":d:vt:qm:", longopts, &index)) != -1) {
        int rc = REPORT_EXIT_OK;
        const char *long_name = NULL;
        for (size_t i = 0; longopts[i].name; i++)
            if (longopts[i].val == c)
                long_name = longopts[i].name;
        if (long_name && strchr("rSqjmD", c) && !filecmd_allows(filecmd_subs[which].allowed, long_name)) {
            char what[64];
            snprintf(what, sizeof(what), "--%s is not an option of file %s", long_name, o->name);
            return cli_usage_error("%s", what);
        }
        switch (c) {
        case 'd': o->common.bdf = optarg; break;
        case 'v': o->common.verbose = true; break;
        case 't': rc = cli_parse_u32(optarg, "timeout -t (milliseconds)", 1, CLI_MAX_TIMEOUT_MS, &o->common.timeout_ms); break;
        case 'w': rc = cli_parse_wait(optarg, &o->common.wait); break;
        case 's': rc = cli_parse_u32(optarg, "spin time --spin-us (microseconds)", 0, 1000000, &o->common.spin_us); break;
        case 'r': o->transfer.resume = true; break;
        case 'S': o->transfer.sha256 = true; break;
        case 'q': o->transfer.quiet = true; break;
        case 'j': o->json = true; break;
        case 'm': rc = cli_parse_u32_base(optarg, 8, "mkdir mode -m (octal)", 0, 07777, &o->mode); break;
        case 'D': o->dir = true; break;
        case ':': return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    int n = argc - optind;
    if (n < filecmd_subs[which].min_args || n > filecmd_subs[which].max_args) {
        char what[96];
        snprintf(what, sizeof(what), "file %s takes %d to %d paths, not %d", o->name, filecmd_subs[which].min_args, filecmd_subs[which].max_args, n);
        return cli_usage_error("%s", what);
    }
    for (int i = 0; i < n; i++)
        o->arg[i] = argv[optind + i];
    o->arg_count = n;
    return REPORT_EXIT_OK;
}

/* Writes s as a JSON string. Bytes >= 0x80 pass through: the host sends UTF-8. */
static void filecmd_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* 2024-06-01T10:00:00Z */
static void filecmd_time(uint64_t mtime_ns, char *out, size_t cap)
{
    time_t sec = (time_t)(mtime_ns / 1000000000ull);
    struct tm tm;
    if (!gmtime_r(&sec, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "?");
}

/* drwxr-xr-x */
static void filecmd_mode_string(uint32_t type, uint32_t mode, char out[11])
{
    static const char rwx[] = "rwxrwxrwx";
    out[0] = type == VMGMT_FILE_TYPE_DIR ? 'd' : type == VMGMT_FILE_TYPE_SYMLINK ? 'l' : type == VMGMT_FILE_TYPE_FILE ? '-' : '?';
    for (int i = 0; i < 9; i++)
        out[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
    out[10] = '\0';
}

static void filecmd_print_json_fields(uint32_t type, uint64_t size, uint32_t mode, uint64_t mtime_ns)
{
    char when[32];
    filecmd_time(mtime_ns, when, sizeof(when));
    printf(",\"type\":\"%s\",\"sizeBytes\":%" PRIu64 ",\"mode\":%u,\"modeOctal\":\"%04o\",\"mtime\":\"%s\",\"mtimeMs\":%" PRIu64 "}",
           fileop_type_name(type), size, mode & 07777u, mode & 07777u, when, mtime_ns / UINT64_C(1000000));
}

static void filecmd_print_text_line(uint32_t type, uint64_t size, uint32_t mode, uint64_t mtime_ns, const char *name)
{
    char perms[11], when[32];
    filecmd_mode_string(type, mode, perms);
    filecmd_time(mtime_ns, when, sizeof(when));
    printf("%s %12" PRIu64 " %s %s\n", perms, size, when, name);
}

struct filecmd_ls {
    bool json;
    const char *dir;
    uint32_t count;
};

/* The JSON object is opened with the first entry, so a refused listing prints nothing on stdout. */
static void filecmd_ls_json_open(const struct filecmd_ls *ls)
{
    fputs("{\"path\":", stdout);
    filecmd_json_string(ls->dir);
    fputs(",\"entries\":[", stdout);
}

static int filecmd_ls_entry(void *arg, const struct vmgmt_dirent *e, const char *name)
{
    struct filecmd_ls *ls = arg;
    if (ls->json && ls->count == 0)
        filecmd_ls_json_open(ls);
    if (ls->json) {
        fputs(ls->count ? ",{\"name\":" : "{\"name\":", stdout);
        filecmd_json_string(name);
        filecmd_print_json_fields(e->type, e->size, e->mode, e->mtime_ns);
    } else {
        filecmd_print_text_line(e->type, e->size, e->mode, e->mtime_ns, name);
    }
    ls->count++;
    return REPORT_EXIT_OK;
}

static int filecmd_ls(struct fileop *f, const struct filecmd_options *o)
{
    const char *dir = o->arg_count ? o->arg[0] : ".";
    struct filecmd_ls ls = { .json = o->json, .dir = dir };
    int rc = fileop_list(f, "ls", dir, filecmd_ls_entry, &ls);
    if (o->json && !rc && ls.count == 0)
        filecmd_ls_json_open(&ls);
    if (o->json && (!rc || ls.count > 0))
        puts(rc ? "],\"complete\":false}" : "]}");
    return rc;
}

static int filecmd_stat(struct fileop *f, const struct filecmd_options *o)
{
    struct vmgmt_file_info info;
    int rc = fileop_stat(f, "stat", o->arg[0], &info);
    if (rc)
        return rc;
    if (info.type < VMGMT_FILE_TYPE_FILE || info.type > VMGMT_FILE_TYPE_OTHER)
        return report_error(REPORT_EXIT_PROTOCOL, "protocol violation by the host during stat %s: file type %u is unknown; restart the vmgmt daemon", o->arg[0],
                            info.type);
    if (o->json) {
        fputs("{\"path\":", stdout);
        filecmd_json_string(o->arg[0]);
        filecmd_print_json_fields(info.type, info.size, info.mode, info.mtime_ns);
        putchar('\n');
    } else {
        filecmd_print_text_line(info.type, info.size, info.mode, info.mtime_ns, o->arg[0]);
    }
    return REPORT_EXIT_OK;
}

static int filecmd_run(struct fileop *f, struct filecmd_options *o)
{
    switch (o->sub) {
    case FILECMD_GET:
        o->transfer.host_path = o->arg[0];
        o->transfer.local_path = o->arg_count > 1 ? o->arg[1] : NULL;
        return transfer_get(f, &o->transfer);
    case FILECMD_PUT:
        o->transfer.local_path = o->arg[0];
        o->transfer.host_path = o->arg[1];
        return transfer_put(f, &o->transfer);
    case FILECMD_LS: return filecmd_ls(f, o);
    case FILECMD_STAT: return filecmd_stat(f, o);
    case FILECMD_MKDIR: return fileop_mkdir(f, "mkdir", o->arg[0], o->mode);
    case FILECMD_RM: return fileop_remove(f, "rm", o->arg[0], o->dir ? VMGMT_FILE_REMOVE_DIR : 0);
    }
    return REPORT_EXIT_USAGE;
}

static int filecmd_body(struct session *s, void *ctx)
{
    struct filecmd_options *o = ctx;
    struct fileop f;
    int rc = fileop_start(&f, &s->ch, o->common.timeout_ms);
    return rc ? rc : filecmd_run(&f, o);
}

int filecmd_main(int argc, char **argv)
{
    struct filecmd_options o;
    int rc = filecmd_parse(argc, argv, &o);
    return rc ? rc : session_run(&o.common, filecmd_body, &o);
}
