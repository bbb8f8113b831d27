// What `vmgmt ... --help`, `vmgmt help ...` and `vmgmt completion bash` know about each command: one entry
// per command in COMMAND_HELP. A new verb adds its entry here (and its parser in cli-args.ts); the global
// page, the group pages (`vmgmt vm --help`), the command's own page and the completion script are all
// generated from this table, and a unit test checks that every option the parser takes is documented here.
// Pure: data, and lookups over it.

export interface FlagHelp {
  /** As typed: `--tail`, or `-f, --follow` (the long form last). */
  flag: string;
  /** The value's placeholder (`BYTES`), absent for a switch. */
  value?: string;
  /** What it does; for a value, what is expected (`a byte count, whole number >= 1`). */
  text: string;
  /** Values the shell may complete (`console qemu daemon`). */
  choices?: readonly string[];
  /** The flag may be given more than once (`--env A=1 --env B=2`). */
  repeats?: boolean;
}

/** What a positional argument completes to: VM names, local files, or fixed words. */
export type CompleteArg = 'vm' | 'file' | 'vm-or-file' | readonly string[];

export interface CommandHelp {
  /** The command words after `vmgmt`: ['vm', 'create']. */
  path: readonly string[];
  /** The arguments after the command words, as in a usage line: `NAME [--timeout MS]`. */
  args: string;
  /** One line for the lists. */
  summary: string;
  /** Paragraphs for the command's own page. */
  description?: string;
  flags?: readonly FlagHelp[];
  /** Command lines a newcomer can copy (without the leading `vmgmt `... they start with it). */
  examples: readonly string[];
  /** Other names of the same command (`list` for `vm ls`). */
  aliases?: readonly string[];
  /** Completion of the positional arguments, in order; the last repeats. */
  complete?: readonly CompleteArg[];
  /** A topic page appended to the command's own (`definition` for `vm create`). */
  topic?: HelpTopicName;
}

/** Pages that are not a command: `vmgmt help definition`. */
export type HelpTopicName = 'definition';
export const HELP_TOPICS: Readonly<Record<HelpTopicName, string>> = {
  definition: 'every field of a VM definition file, with its default and bounds',
};

/** Options every command takes (cli-args.ts GLOBAL_OPTIONS). */
export const GLOBAL_FLAGS: readonly FlagHelp[] = [
  { flag: '--socket', value: 'PATH', text: "the daemon's socket (default $VMGMT_SOCKET, else /run/vmgmt/vmgmt.sock)" },
  { flag: '--json', text: 'machine output: one JSON document on stdout (errors too, as {"code", "message", "details"})' },
  { flag: '-h, --help', text: 'help for the command' },
];

/** The command groups in the order the global page lists them; a group's commands are its entries. */
export const COMMAND_GROUPS: Readonly<Record<string, string>> = {
  daemon: 'run the daemon',
  vm: 'define, run and look at VMs',
  cp: 'copy files between the host and a VM',
  chat: 'talk to names in the guests',
  stats: 'guest and host CPU figures and shares',
  agent: 'the guest agent: update it in place',
  cluster: 'cluster mode over NATS: keys',
  events: "follow the daemon's event stream",
  top: 'a live table of the VMs',
  dashboard: "the web dashboard's address and token",
  host: "what the daemon decided about this host (KVM self-probe)",
  completion: 'shell completion',
  help: 'help on a command or a topic',
};

const TIMEOUT_MS = (what: string): FlagHelp => ({ flag: '--timeout', value: 'MS', text: what });

export const COMMAND_HELP: readonly CommandHelp[] = [
  {
    path: ['daemon'],
    args: '[--config FILE] [--state-dir DIR] [--runtime-dir DIR] [--socket PATH] [--cluster nats://HOST:PORT]',
    summary: 'run the daemon in the foreground; SIGHUP reloads its config file',
    description: 'Flags override the config file (README.md: daemon configuration file). A missing default file means all defaults.',
    flags: [
      { flag: '--config', value: 'FILE', text: 'the config file (default /etc/vmgmt/config.json)' },
      { flag: '--state-dir', value: 'DIR', text: 'where definitions, records and logs are kept' },
      { flag: '--runtime-dir', value: 'DIR', text: 'where sockets and run directories go' },
      { flag: '--cluster', value: 'URL', text: "chat across hosts over NATS: the broker's nats://HOST:PORT (the config's cluster section gives the credentials)" },
    ],
    examples: ['vmgmt daemon --state-dir /tmp/vmgmt/state --runtime-dir /tmp/vmgmt/run --socket /tmp/vmgmt/vmgmt.sock'],
    complete: [],
  },
  {
    path: ['vm', 'create'],
    args: '-f FILE',
    summary: 'define a VM from a JSON definition file',
    description:
      'The daemon checks the whole definition and answers every problem, field by field (exit 6); files it names on the host (files.root, boot.kernel, boot.initrd, boot.disk) must exist now.',
    flags: [{ flag: '-f, --file', value: 'FILE', text: 'the JSON definition; - reads stdin' }],
    examples: ['vmgmt vm create -f web.json', `echo '{"name": "web", "memoryMiB": 512}' | vmgmt vm create -f -`],
    topic: 'definition',
  },
  {
    path: ['vm', 'ls'],
    args: '[-q]',
    summary: 'list VMs in natural order (s1, s2, s10), with state and uptime',
    flags: [{ flag: '-q, --quiet', text: 'print the names only, one a line' }],
    examples: ['vmgmt vm ls', 'vmgmt vm ls -q'],
    aliases: ['list'],
  },
  {
    path: ['vm', 'inspect'],
    args: 'NAME',
    summary: 'show one VM in detail (state and why, accelerator and why, device, paths)',
    examples: ['vmgmt vm inspect web', 'vmgmt vm inspect web --json'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'start'],
    args: 'NAME',
    summary: 'start a VM',
    description:
      "With accel auto, the first start on a host runs the KVM self-probe (a short boot under KVM); its answer is kept per host (`vmgmt host`), so later starts and other checkouts do not wait for it.",
    examples: ['vmgmt vm start web'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'stop'],
    args: 'NAME [--timeout MS]',
    summary: 'press the ACPI power button; `quit` QEMU after MS, then SIGKILL',
    description:
      "A guest that is still booting has not enabled the ACPI power button yet, and QEMU drops a press it has not enabled: the daemon reads the guest's ACPI registers first, and such a guest (a stop right after a start) is stopped with QEMU's quit at once. A guest that took the press gets the timeout (the definition's powerdownTimeoutMs, 30000 by default) to power off before QEMU is told to quit. The answer says which way the VM stopped, and why.",
    flags: [TIMEOUT_MS('how long the guest gets to power off, in ms (default: the definition\'s powerdownTimeoutMs)')],
    examples: ['vmgmt vm stop web', 'vmgmt vm stop web --timeout 5000'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'kill'],
    args: 'NAME',
    summary: "SIGKILL the VM's QEMU",
    examples: ['vmgmt vm kill web'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'rm'],
    args: 'NAME [--force]',
    summary: 'remove a VM (its definition, record and logs)',
    flags: [{ flag: '--force', text: 'kill a running VM first' }],
    examples: ['vmgmt vm rm web', 'vmgmt vm rm --force web'],
    aliases: ['remove', 'delete'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'logs'],
    args: 'NAME [--source console|qemu|daemon] [--tail BYTES] [-f]',
    summary: "print a VM's log (default: the serial console)",
    flags: [
      { flag: '--source', value: 'SOURCE', text: "console (the guest's serial port), qemu (QEMU's stderr) or daemon (what the daemon did)", choices: ['console', 'qemu', 'daemon'] },
      { flag: '--tail', value: 'BYTES', text: 'the last BYTES of the log, a whole number >= 1 (default 65536)' },
      { flag: '-f, --follow', text: 'then keep printing what is added until the VM stops or crashes (exit 0, said on stderr) or Ctrl-C; a crash the on-failure policy restarts is followed on (--json: one {"name","source","text"} line per piece)' },
    ],
    examples: ['vmgmt vm logs web', 'vmgmt vm logs web --source daemon --tail 4096', 'vmgmt vm logs -f web'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'console'],
    args: 'NAME [--linger MS]',
    summary: 'attach to the serial console; detach with Ctrl-]',
    description:
      "With stdin a terminal, keys go to the guest raw. Piped stdin is sent to its end; then what the guest answers is printed until its shell prompt is back, or it has sent nothing for --linger ms (at most 30 s), and the command exits. If the VM stops meanwhile, that is said (exit 0); a console QEMU drops while the VM runs exits 1.",
    flags: [{ flag: '--linger', value: 'MS', text: 'piped input: how long the guest may be quiet before the answer counts as done, 1..30000 (default 3000)' }],
    examples: ['vmgmt vm console web', "printf 'uname -a\\n' | vmgmt vm console web", "printf 'sleep 5; date\\n' | vmgmt vm console web --linger 8000"],
    complete: ['vm'],
  },
  {
    path: ['vm', 'pause'],
    args: 'NAME',
    summary: "halt the VM's CPUs (QMP stop); cp, exec and chat to it answer \"vm NAME is paused\" until it is resumed",
    examples: ['vmgmt vm pause web', 'vmgmt vm resume web'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'resume'],
    args: 'NAME',
    summary: 'let a paused VM run again (QMP cont)',
    examples: ['vmgmt vm resume web'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'exec'],
    args: 'NAME [--tty] [--timeout MS] [--env K=V]... [--cwd DIR] -- CMD [ARGS]',
    summary: 'run a command in the guest through its agent; the CLI exits with its exit code',
    description:
      "stdin is forwarded, stdout and stderr are streamed as they come (no size cap), and the CLI exits with CMD's exit code (128+N: killed by signal N; 124: --timeout killed it). With --json: NDJSON {\"event\":\"output\",...} lines, then {\"event\":\"exit\",...}.",
    flags: [
      { flag: '--tty', text: 'run CMD on a pseudo-terminal (an interactive shell: --tty -- sh) of this terminal\'s size; resizes of this terminal are passed on' },
      TIMEOUT_MS('kill CMD after MS milliseconds (exit 124)'),
      { flag: '--env', value: 'K=V', text: 'add NAME=VALUE to the environment; repeat for more', repeats: true },
      { flag: '--cwd', value: 'DIR', text: 'the absolute guest directory to run in' },
    ],
    examples: ['vmgmt vm exec web -- uname -a', 'vmgmt vm exec web --tty -- sh', 'tar c src | vmgmt vm exec web -- tar x -C /tmp'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'update'],
    args: 'NAME -f FILE',
    summary: 'replace the definition of a stopped VM (checked as at create)',
    flags: [{ flag: '-f, --file', value: 'FILE', text: 'the new JSON definition (its name must be NAME); - reads stdin' }],
    examples: ['vmgmt vm update web -f web.json'],
    complete: ['vm'],
  },
  {
    path: ['vm', 'edit'],
    args: 'NAME',
    summary: "edit a stopped VM's definition in $VISUAL / $EDITOR, then update it",
    description: 'If the daemon refuses the edited definition, its problems are printed and the edited file is kept for another try.',
    examples: ['EDITOR=nano vmgmt vm edit web'],
    complete: ['vm'],
  },
  {
    path: ['cp'],
    args: '[-r] SRC DST',
    summary: 'copy a file (or with -r a directory) between the host and a running VM (one side is VM:/PATH)',
    flags: [{ flag: '-r, --recursive', text: 'copy a directory tree, file by file (symlinks, fifos, devices and sockets are skipped with a warning)' }],
    description: 'VM:/DIR/ keeps the local name; a download is written atomically; a local name with a colon is written ./a:b. With --json: NDJSON events, the last {"event":"done"} or {"event":"error"}.',
    examples: ['vmgmt cp ./app.tar web:/tmp/', 'vmgmt cp web:/etc/hostname .', 'vmgmt cp -r ./site web:/srv/', 'vmgmt cp -r web:/var/log ./logs'],
    complete: ['vm-or-file'],
  },
  {
    path: ['chat', 'peers'],
    args: '[--watch]',
    summary: 'chat names the host may talk to (VM/NAME, @host/NAME)',
    flags: [{ flag: '--watch', text: 'then print join/leave lines until Ctrl-C' }],
    examples: ['vmgmt chat peers', 'vmgmt chat peers --watch'],
  },
  {
    path: ['chat', 'send'],
    args: 'TARGET MESSAGE|-',
    summary: 'send a message as host (- reads stdin, up to 64 KiB)',
    examples: ['vmgmt chat send web/bob hello'],
  },
  {
    path: ['chat', 'call'],
    args: 'TARGET MESSAGE|- [--timeout MS]',
    summary: 'call a name and print its reply',
    flags: [TIMEOUT_MS('how long to wait for the reply, 1..300000 ms (default 30000)')],
    examples: ['vmgmt chat call web/echo ping --timeout 5000'],
  },
  {
    path: ['chat', 'listen'],
    args: '[--as NAME [--exec CMD]]',
    summary: 'print messages to host, or hold the host-side name NAME',
    flags: [
      { flag: '--as', value: 'NAME', text: 'the host-side chat name to hold (1..64 bytes of a-z 0-9 . _ -)' },
      { flag: '--exec', value: 'CMD', text: 'answer calls with CMD (stdin: the call, stdout: the reply, exit status: the reply status)' },
    ],
    examples: ['vmgmt chat listen', "vmgmt chat listen --as clock --exec 'date -u'"],
  },
  {
    path: ['chat', 'policy'],
    args: 'check FROM TO',
    summary: 'which chat rule decides whether FROM may reach TO, and why',
    examples: ['vmgmt chat policy check web/bob @host/clock'],
    complete: [['check']],
  },
  {
    path: ['stats'],
    args: '[NAME] [--watch]',
    summary: 'guest CPU, steal, declared demand, host vCPU use and the CPU share now (and why)',
    flags: [{ flag: '--watch', text: 'print again every second until Ctrl-C' }],
    examples: ['vmgmt stats', 'vmgmt stats web --watch'],
    complete: ['vm'],
  },
  {
    path: ['agent', 'update'],
    args: 'NAME...|--all [--binary PATH] [--sha256 HEX]',
    summary: 'replace the guest agent (vmgmt-guest) of running VMs in place, with rollback',
    description:
      'The new binary goes to the guest through the device; the agent checks its sha256 and version, keeps the old one, starts the new one, and the new one must report in within the deadline or the old one is restored and keeps running. Chat names and the stats stream come back without a reboot.',
    flags: [
      { flag: '--all', text: 'every running VM' },
      { flag: '--binary', value: 'PATH', text: "the new vmgmt-guest on this host (default: the daemon's own build)" },
      { flag: '--sha256', value: 'HEX', text: 'the digest the guest must find (64 lowercase hex digits)' },
    ],
    examples: ['vmgmt agent update web', 'vmgmt agent update --all --binary guest-driver/build/vmgmt-guest'],
    complete: ['vm'],
  },
  {
    path: ['cluster', 'keygen'],
    args: 'FILE',
    summary: "a new NATS nkey for cluster mode: the seed to FILE (0600), the public key printed for the broker's users",
    examples: ['vmgmt cluster keygen /etc/vmgmt/host-a.nk'],
    complete: ['file'],
  },
  {
    path: ['events'],
    args: '[--vm NAME]',
    summary: "follow the daemon's events (VM state, stats records, copies, chat); reconnects where it left off",
    description: 'Reconnects with the last event id it printed (Last-Event-ID) and says on stderr when events may have been missed. With --json: one event per line.',
    flags: [{ flag: '--vm', value: 'NAME', text: 'only the events of this VM' }],
    examples: ['vmgmt events', 'vmgmt events --vm web --json'],
    complete: [],
  },
  {
    path: ['top'],
    args: '[--once]',
    summary: 'a live table like docker stats: state, guest CPU, steal, demand, share, host CPU, RSS, messages/s (q quits)',
    flags: [{ flag: '--once', text: 'print one table (with --json: one document) and exit' }],
    examples: ['vmgmt top', 'vmgmt top --once --json'],
    complete: [],
  },
  {
    path: ['dashboard'],
    args: '',
    summary: "the web dashboard's address with its token, and the metrics endpoint",
    examples: ['vmgmt dashboard'],
    complete: [],
  },
  {
    path: ['host'],
    args: '',
    summary: "this host as the daemon sees it: the KVM self-probe's answer, why, and its cache",
    examples: ['vmgmt host', 'vmgmt host --json'],
    complete: [],
  },
  {
    path: ['completion'],
    args: 'bash',
    summary: 'print a bash completion script',
    examples: ['source <(vmgmt completion bash)', 'vmgmt completion bash > /etc/bash_completion.d/vmgmt'],
    complete: [['bash']],
  },
  {
    path: ['help'],
    args: '[COMMAND... | definition]',
    summary: 'help on a command, a group or a topic',
    examples: ['vmgmt help vm create', 'vmgmt help definition'],
  },
];

/** The entry whose path is the longest prefix of these words (aliases resolved), and how many words it used. */
export function findCommandHelp(words: readonly string[], table: readonly CommandHelp[] = COMMAND_HELP): { entry: CommandHelp; used: number } | undefined {
  let best: { entry: CommandHelp; used: number } | undefined;
  for (const entry of table) {
    const n = entry.path.length;
    if (words.length < n) continue;
    const same = entry.path.every((w, i) => w === words[i] || (i === n - 1 && entry.aliases?.includes(words[i] ?? '')));
    if (same && (!best || n > best.used)) best = { entry, used: n };
  }
  return best;
}

/** The commands of a group (`vm`), in table order. */
export function groupCommands(group: string, table: readonly CommandHelp[] = COMMAND_HELP): CommandHelp[] {
  return table.filter((e) => e.path[0] === group && e.path.length > 1);
}

/** The long option names a command's entry documents (`tail`, `follow`), without the dashes. */
export function documentedOptions(entry: CommandHelp): string[] {
  return (entry.flags ?? []).map((f) => longName(f.flag));
}

export function longName(flag: string): string {
  const parts = flag.split(',').map((p) => p.trim());
  return (parts[parts.length - 1] ?? flag).replace(/^-+/, '');
}
