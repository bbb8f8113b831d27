// Command line → a typed command, or a usage error that says what is wrong. Pure: argv and env in, value out.
import { parseArgs } from 'node:util';
import { DEFAULT_SOCKET_PATH } from './api-client.js';
import { COMMAND_HELP, findCommandHelp, GLOBAL_FLAGS, groupCommands, longName, type CommandHelp, type FlagHelp } from './command-help.js';
import { parseCpArgs, type CpCommand } from './cp-args.js';
import { VM_NAME_PATTERN } from '../api/api-contract.js';

export type LogSourceArg = 'console' | 'qemu' | 'daemon';

export type CliCommand =
  /** words: what help was asked for (`vm create`, `definition`); [] for the global page. */
  | { kind: 'help'; words: string[] }
  | { kind: 'completion'; shell: 'bash' }
  | { kind: 'host' }
  | { kind: 'daemon'; configPath?: string; stateDir?: string; runtimeDir?: string; socketPath?: string; cluster?: string }
  | { kind: 'cluster-keygen'; file: string }
  | { kind: 'vm-create'; file: string }
  | { kind: 'vm-ls'; quiet: boolean }
  | { kind: 'vm-inspect' | 'vm-start' | 'vm-kill' | 'vm-edit' | 'vm-pause' | 'vm-resume'; name: string }
  | { kind: 'vm-console'; name: string; lingerMs?: number }
  | { kind: 'vm-update'; name: string; file: string }
  | { kind: 'vm-stop'; name: string; timeoutMs?: number }
  | { kind: 'vm-rm'; name: string; force: boolean }
  | { kind: 'vm-logs'; name: string; source?: LogSourceArg; tailBytes?: number; follow: boolean }
  | { kind: 'vm-exec'; name: string; argv: string[]; tty: boolean; timeoutMs?: number; env: string[]; cwd?: string }
  | { kind: 'stats'; name?: string; watch: boolean }
  | ObserveCommand
  /** `vmgmt agent update VM|--all [--binary PATH]`: names empty with all. */
  | { kind: 'agent-update'; names: string[]; all: boolean; binary?: string; sha256?: string }
  | CpCommand
  | ChatCommand;

/** `vmgmt events`, `vmgmt dashboard`, `vmgmt top` (orchestrator/cli/observe-command.ts). */
export type ObserveCommand = { kind: 'events'; vm?: string } | { kind: 'dashboard' } | { kind: 'top'; once: boolean };

/** `vmgmt chat ...`: MESSAGE `-` reads stdin. */
export type ChatCommand =
  | { kind: 'chat-peers'; watch: boolean }
  | { kind: 'chat-send'; target: string; message: string }
  | { kind: 'chat-call'; target: string; message: string; timeoutMs?: number }
  | { kind: 'chat-listen'; as?: string; exec?: string }
  | { kind: 'chat-policy-check'; from: string; to: string };

export interface CliGlobals {
  socketPath: string;
  json: boolean;
}

export type ParsedCli =
  | { ok: true; command: CliCommand; globals: CliGlobals }
  /** group: the command word (`vm`, `cp`, ...) when argv got that far; helpFor: the command's words for the hint. */
  | { ok: false; message: string; globals: CliGlobals; group?: string; helpFor?: string };

type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
type OptionValues = Partial<Record<string, string | boolean | (string | boolean)[]>>;

/**
 * A command's options as node:util parseArgs wants them, from its flags in the help table (command-help.ts):
 * `-f, --file` with a value is `file: { type: 'string', short: 'f' }`. The table is the one list of flags.
 */
function optionSpecs(flags: readonly FlagHelp[]): Record<string, OptionSpec> {
  const specs: Record<string, OptionSpec> = {};
  for (const f of flags) {
    const parts = f.flag.split(',').map((p) => p.trim());
    const short = parts.find((p) => /^-[A-Za-z]$/.test(p));
    specs[longName(f.flag)] = { type: f.value ? 'string' : 'boolean', ...(short ? { short: short.slice(1) } : {}), ...(f.repeats ? { multiple: true } : {}) };
  }
  return specs;
}

/** Every long option of every command, each taking a value or not: enough to find the command words. */
const ANY_COMMAND_OPTIONS: Record<string, { type: 'string' | 'boolean' }> = Object.fromEntries(
  Object.entries(optionSpecs([...GLOBAL_FLAGS, ...COMMAND_HELP.flatMap((e) => e.flags ?? [])])).map(([name, spec]) => [name, { type: spec.type }]),
);

/** Each vm subcommand: its positional arguments (its options are its flags in command-help.ts). */
const VM_COMMANDS = {
  create: { names: 0 },
  ls: { names: 0 },
  inspect: { names: 1 },
  start: { names: 1 },
  stop: { names: 1 },
  kill: { names: 1 },
  rm: { names: 1 },
  logs: { names: 1 },
  console: { names: 1 },
  update: { names: 1 },
  edit: { names: 1 },
  pause: { names: 1 },
  resume: { names: 1 },
  exec: { names: 1 },
} as const satisfies Record<string, { names: 0 | 1 }>;
type VmSubcommand = keyof typeof VM_COMMANDS;

const VM_ALIASES: Readonly<Record<string, VmSubcommand>> = { list: 'ls', remove: 'rm', delete: 'rm' };

/** The positional words of argv, options (and the values of those known to take one) left out. */
function commandWords(argv: readonly string[]): string[] {
  try {
    return parseArgs({ args: [...argv], options: ANY_COMMAND_OPTIONS, allowPositionals: true, strict: false }).positionals;
  } catch {
    return argv.filter((a) => !a.startsWith('-'));
  }
}

/**
 * `--tail -5`: parseArgs calls a value that starts with `-` ambiguous. When it is not one of the command's
 * own options, it is the value, and the command's check then says what was expected (`--tail takes a byte
 * count ... (got "-5")`).
 */
function joinDashValues(argv: readonly string[], specs: Record<string, OptionSpec>): string[] {
  const valueFlags = new Set<string>();
  const known = new Set<string>();
  for (const [name, spec] of Object.entries(specs)) {
    known.add(`--${name}`);
    if (spec.short) known.add(`-${spec.short}`);
    if (spec.type === 'string') {
      valueFlags.add(`--${name}`);
      if (spec.short) valueFlags.add(`-${spec.short}`);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    if (valueFlags.has(a) && next !== undefined && next.startsWith('-') && next !== '-' && next !== '--' && !known.has(next.split('=')[0]!)) {
      out.push(`${a.startsWith('--') ? a : `--${longNameOfShort(a, specs)}`}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function longNameOfShort(flag: string, specs: Record<string, OptionSpec>): string {
  return Object.entries(specs).find(([, s]) => s.short === flag.slice(1))?.[0] ?? flag.replace(/^-+/, '');
}

function flagList(flags: readonly FlagHelp[]): string {
  return flags.map((f) => (f.value ? `${f.flag} ${f.value}` : f.flag)).join(', ');
}

/** parseArgs' error, said in terms of the command: what it takes instead. */
function optionError(err: unknown, entry: CommandHelp | undefined, argv: readonly string[]): string {
  const e = err as Error & { code?: string };
  const command = entry ? `\`vmgmt ${entry.path.join(' ')}\`` : '`vmgmt`';
  const takes = entry?.flags?.length ? `it takes ${flagList(entry.flags)}` : 'it takes no options of its own';
  // parseArgs quotes the option as given ('--bogus'), or as declared ('-f, --follow', '--tail <value>').
  const declared = /'(-[^']+)'/.exec(e.message)?.[1]?.replace(/ <value>$/, '');
  const quoted = declared?.split(',').map((p) => p.trim()).at(-1);
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted) {
    const name = quoted.replace(/^-+/, '').split('=')[0]!;
    const elsewhere = quoted.startsWith('--') && Object.hasOwn(ANY_COMMAND_OPTIONS, name);
    return `${elsewhere ? `--${name} does not apply to` : `unknown option ${quoted} for`} ${command}: ${takes} (and --socket PATH, --json, --help)`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && quoted) {
    const flag = quoted;
    const help = [...(entry?.flags ?? []), ...GLOBAL_FLAGS].find((f) => f.flag.split(',').map((p) => p.trim()).includes(flag));
    if (/does not take an argument/.test(e.message)) return `${flag} is a switch and takes no value (${command})`;
    return `${flag} needs a value${help?.value ? ` ${help.value}: ${help.text}` : ''}`;
  }
  void argv;
  return e.message.split('\n')[0] ?? String(err);
}

export function parseCli(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParsedCli {
  // `vmgmt vm exec NAME [options] -- CMD ARGS`: everything after the first -- is the guest command's own.
  const dashes = argv.indexOf('--');
  const execArgv = dashes >= 0 && argv.slice(0, dashes).includes('exec') ? argv.slice(dashes + 1) : undefined;
  const ownArgv = execArgv ? argv.slice(0, dashes) : argv;
  const words = commandWords(ownArgv);
  const beforeDashes = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  const fallbackGlobals: CliGlobals = {
    socketPath: env.VMGMT_SOCKET || DEFAULT_SOCKET_PATH,
    json: beforeDashes.includes('--json'),
  };
  // Help first: `vmgmt vm logs web --help` is the page of `vm logs`, whatever else the line holds.
  if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) return { ok: true, command: { kind: 'help', words }, globals: fallbackGlobals };
  if (words[0] === 'help') return { ok: true, command: { kind: 'help', words: words.slice(1) }, globals: fallbackGlobals };

  const found = findCommandHelp(words);
  const entry = found?.entry;
  const specs = optionSpecs([...GLOBAL_FLAGS, ...(entry?.flags ?? [])]);
  let values: OptionValues;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: joinDashValues(ownArgv, specs), options: specs, allowPositionals: true, strict: true }));
  } catch (err) {
    return { ok: false, message: optionError(err, entry, argv), globals: fallbackGlobals, ...(words[0] ? { group: words[0] } : {}), ...(entry ? { helpFor: entry.path.join(' ') } : {}) };
  }
  const socketFlag = values.socket as string | undefined;
  const globals: CliGlobals = { socketPath: socketFlag || fallbackGlobals.socketPath, json: values.json === true };
  const usage = (message: string): ParsedCli => ({
    ok: false,
    message,
    globals,
    ...(positionals[0] === undefined ? {} : { group: positionals[0] }),
    // The hint names the command's page, else its group's (`vmgmt vm --help` for an unknown vm verb).
    ...(entry ? { helpFor: entry.path.join(' ') } : positionals[0] && groupCommands(positionals[0]).length > 0 ? { helpFor: positionals[0] } : {}),
  });
  const done = (command: CliCommand): ParsedCli => ({ ok: true, command, globals });

  if (socketFlag === '') return usage('--socket needs a path');

  const [group, sub, ...rest] = positionals;
  if (group === undefined) return usage('no command given');

  if (group === 'completion') {
    if (sub !== 'bash' || rest.length > 0) return usage(`\`vmgmt completion\` takes the shell: bash (got ${sub === undefined ? 'nothing' : JSON.stringify([sub, ...rest].join(' '))})`);
    return done({ kind: 'completion', shell: 'bash' });
  }

  if (group === 'host') {
    if (sub !== undefined) return usage(`\`vmgmt host\` takes no arguments (got ${JSON.stringify(sub)})`);
    return done({ kind: 'host' });
  }

  if (group === 'daemon') {
    if (sub !== undefined) return usage(`\`vmgmt daemon\` takes no arguments (got ${JSON.stringify(sub)})`);
    const configPath = values.config as string | undefined;
    if (configPath === '') return usage('--config needs a path');
    const stateDir = values['state-dir'] as string | undefined;
    const runtimeDir = values['runtime-dir'] as string | undefined;
    const socketPath = socketFlag ?? (env.VMGMT_SOCKET || undefined);
    const cluster = values.cluster as string | undefined;
    if (cluster !== undefined && !/^nats:\/\/[^\s/]+$/.test(cluster)) return usage(`--cluster ${JSON.stringify(cluster)}: give the broker as nats://HOST:PORT`);
    return done({
      kind: 'daemon',
      ...(cluster === undefined ? {} : { cluster }),
      ...(configPath === undefined ? {} : { configPath }),
      ...(stateDir === undefined ? {} : { stateDir }),
      ...(runtimeDir === undefined ? {} : { runtimeDir }),
      ...(socketPath === undefined ? {} : { socketPath }),
    });
  }

  if (group === 'cp') {
    const cp = parseCpArgs(positionals.slice(1), { recursive: values.recursive === true });
    return cp.ok ? done(cp.command) : usage(cp.message);
  }

  if (group === 'chat') {
    const chat = parseChatArgs(positionals.slice(1), values);
    return chat.ok ? done(chat.command) : usage(chat.message);
  }

  if (group === 'cluster') {
    if (sub !== 'keygen' || rest.length !== 1 || !rest[0]) return usage('usage: vmgmt cluster keygen FILE (writes a new NATS nkey seed to FILE, prints its public key)');
    return done({ kind: 'cluster-keygen', file: rest[0] });
  }

  if (group === 'stats') {
    if (rest.length > 0) return usage(`\`vmgmt stats\` takes at most one VM name; unexpected ${JSON.stringify(rest[0])}`);
    return done({ kind: 'stats', ...(sub === undefined ? {} : { name: sub }), watch: values.watch === true });
  }

  if (group === 'events' || group === 'dashboard' || group === 'top') {
    if (sub !== undefined) return usage(`\`vmgmt ${group}\` takes no arguments (got ${JSON.stringify(sub)})`);
    if (group === 'dashboard') return done({ kind: 'dashboard' });
    if (group === 'top') {
      if (globals.json && values.once !== true) return usage('`vmgmt top --json` needs --once (one JSON document)');
      return done({ kind: 'top', once: values.once === true });
    }
    const vm = values.vm as string | undefined;
    if (vm !== undefined && !VM_NAME_PATTERN.test(vm)) return usage(`--vm ${JSON.stringify(vm)} is not a VM name`);
    return done({ kind: 'events', ...(vm === undefined ? {} : { vm }) });
  }

  if (group === 'agent') {
    if (sub !== 'update') return usage(`\`vmgmt agent\` needs a subcommand: update`);
    const all = values.all === true;
    if (all && rest.length > 0) return usage('`vmgmt agent update --all` takes no VM names');
    if (!all && rest.length === 0) return usage('`vmgmt agent update` needs VM names, or --all for every running VM');
    const binary = values.binary as string | undefined;
    if (binary === '') return usage('--binary needs a path');
    const sha256 = values.sha256 as string | undefined;
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) return usage('--sha256 takes 64 lowercase hex digits');
    return done({ kind: 'agent-update', names: rest, all, ...(binary === undefined ? {} : { binary }), ...(sha256 === undefined ? {} : { sha256 }) });
  }

  if (group !== 'vm') {
    const groups = [...new Set(COMMAND_HELP.map((e) => e.path[0]))].map((g) => `\`vmgmt ${g}\``).join(', ');
    return usage(`unknown command ${JSON.stringify(group)}: use one of ${groups}`);
  }
  if (sub === undefined) return usage(`\`vmgmt vm\` needs a subcommand: ${Object.keys(VM_COMMANDS).join(', ')}`);
  const subcommand = VM_ALIASES[sub] ?? sub;
  if (!isVmSubcommand(subcommand)) {
    return usage(`unknown command \`vmgmt vm ${sub}\`: use one of ${Object.keys(VM_COMMANDS).join(', ')}`);
  }
  const spec = VM_COMMANDS[subcommand];
  if (rest.length < spec.names) return usage(`\`vmgmt vm ${subcommand}\` needs a VM name`);
  if (rest.length > spec.names) {
    return usage(`\`vmgmt vm ${subcommand}\` takes ${spec.names === 0 ? 'no arguments' : 'one VM name'}; unexpected ${JSON.stringify(rest[spec.names])}`);
  }
  const name = rest[0] ?? '';

  switch (subcommand) {
    case 'create': {
      const file = values.file as string | undefined;
      if (file === undefined || file === '') return usage('`vmgmt vm create` needs -f FILE (a JSON definition; - reads stdin)');
      return done({ kind: 'vm-create', file });
    }
    case 'update': {
      const file = values.file as string | undefined;
      if (file === undefined || file === '') return usage('`vmgmt vm update NAME` needs -f FILE (the new JSON definition; - reads stdin)');
      return done({ kind: 'vm-update', name, file });
    }
    case 'ls':
      return done({ kind: 'vm-ls', quiet: values.quiet === true });
    case 'inspect':
    case 'start':
    case 'kill':
    case 'edit':
    case 'pause':
    case 'resume':
      return done({ kind: `vm-${subcommand}`, name });
    case 'console': {
      if (values.linger === undefined) return done({ kind: 'vm-console', name });
      const lingerMs = wholeNumber(values.linger as string, 1);
      if (lingerMs === undefined || lingerMs > 30_000) return usage(`--linger takes milliseconds, 1..30000 (got ${JSON.stringify(values.linger)})`);
      return done({ kind: 'vm-console', name, lingerMs });
    }
    case 'stop': {
      if (values.timeout === undefined) return done({ kind: 'vm-stop', name });
      const timeoutMs = wholeNumber(values.timeout as string, 0);
      if (timeoutMs === undefined) return usage(`--timeout takes milliseconds as a whole number >= 0 (got ${JSON.stringify(values.timeout)})`);
      return done({ kind: 'vm-stop', name, timeoutMs });
    }
    case 'rm':
      return done({ kind: 'vm-rm', name, force: values.force === true });
    case 'exec': {
      if (!execArgv || execArgv.length === 0) return usage('`vmgmt vm exec NAME -- CMD [ARGS]` needs the command after --');
      const env = (values.env as string[] | undefined) ?? [];
      const badEnv = env.find((e) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(e));
      if (badEnv !== undefined) return usage(`--env takes NAME=VALUE (got ${JSON.stringify(badEnv)})`);
      const cwd = values.cwd as string | undefined;
      if (cwd !== undefined && !cwd.startsWith('/')) return usage(`--cwd takes an absolute guest path (got ${JSON.stringify(cwd)})`);
      const command: CliCommand & { kind: 'vm-exec' } = { kind: 'vm-exec', name, argv: execArgv, tty: values.tty === true, env, ...(cwd !== undefined ? { cwd } : {}) };
      if (values.timeout !== undefined) {
        const timeoutMs = wholeNumber(values.timeout as string, 1);
        if (timeoutMs === undefined) return usage(`--timeout takes milliseconds as a whole number >= 1 (got ${JSON.stringify(values.timeout)})`);
        command.timeoutMs = timeoutMs;
      }
      return done(command);
    }
    case 'logs': {
      const command: CliCommand & { kind: 'vm-logs' } = { kind: 'vm-logs', name, follow: values.follow === true };
      if (values.source !== undefined) {
        const source = values.source as string;
        if (source !== 'console' && source !== 'qemu' && source !== 'daemon') {
          return usage(`--source must be console, qemu or daemon (got ${JSON.stringify(source)})`);
        }
        command.source = source;
      }
      if (values.tail !== undefined) {
        const tailBytes = wholeNumber(values.tail as string, 1);
        if (tailBytes === undefined) return usage(`--tail takes a byte count as a whole number >= 1 (got ${JSON.stringify(values.tail)})`);
        command.tailBytes = tailBytes;
      }
      return done(command);
    }
  }
}

/** Each chat subcommand's positional arguments (its options are its flags in command-help.ts). */
const CHAT_COMMANDS = {
  peers: { args: [] },
  send: { args: ['TARGET', 'MESSAGE'] },
  call: { args: ['TARGET', 'MESSAGE'] },
  listen: { args: [] },
  policy: { args: ['check', 'FROM', 'TO'] },
} as const satisfies Record<string, { args: readonly string[] }>;

const CHAT_NAME = /^[a-z0-9._-]{1,64}$/;

function parseChatArgs(args: string[], values: OptionValues): { ok: true; command: ChatCommand } | { ok: false; message: string } {
  const [sub, ...rest] = args;
  const fail = (message: string) => ({ ok: false as const, message });
  if (sub === undefined) return fail(`\`vmgmt chat\` needs a subcommand: ${Object.keys(CHAT_COMMANDS).join(', ')}`);
  if (!Object.hasOwn(CHAT_COMMANDS, sub)) return fail(`unknown command \`vmgmt chat ${sub}\`: use one of ${Object.keys(CHAT_COMMANDS).join(', ')}`);
  const spec = CHAT_COMMANDS[sub as keyof typeof CHAT_COMMANDS];
  const want: readonly string[] = spec.args;
  const usageLine = `vmgmt chat ${sub}${want.length ? ' ' + want.join(' ') : ''}`;
  if (rest.length < want.length) return fail(`\`${usageLine}\`: ${want[rest.length]} is missing`);
  if (rest.length > want.length) return fail(`\`${usageLine}\`: unexpected ${JSON.stringify(rest[want.length])}`);
  switch (sub as keyof typeof CHAT_COMMANDS) {
    case 'peers':
      return { ok: true, command: { kind: 'chat-peers', watch: values.watch === true } };
    case 'send':
    case 'call': {
      const [target = '', message = ''] = rest;
      if (!CHAT_NAME.test(target)) return fail(`TARGET ${JSON.stringify(target)} is not a chat name (1..64 bytes of a-z 0-9 . _ -)`);
      if (sub === 'send') return { ok: true, command: { kind: 'chat-send', target, message } };
      if (values.timeout === undefined) return { ok: true, command: { kind: 'chat-call', target, message } };
      const timeoutMs = wholeNumber(values.timeout as string, 1);
      if (timeoutMs === undefined || timeoutMs > 300_000) return fail(`--timeout takes milliseconds, 1..300000 (got ${JSON.stringify(values.timeout)})`);
      return { ok: true, command: { kind: 'chat-call', target, message, timeoutMs } };
    }
    case 'listen': {
      const as = values.as as string | undefined;
      const exec = values.exec as string | undefined;
      if (as !== undefined && !CHAT_NAME.test(as)) return fail(`--as ${JSON.stringify(as)} is not a chat name (1..64 bytes of a-z 0-9 . _ -)`);
      if (exec !== undefined && as === undefined) return fail('--exec answers calls to a name of this listener: give --as NAME too');
      if (exec === '') return fail('--exec needs a command');
      return { ok: true, command: { kind: 'chat-listen', ...(as === undefined ? {} : { as }), ...(exec === undefined ? {} : { exec }) } };
    }
    case 'policy': {
      const [check, from = '', to = ''] = rest;
      if (check !== 'check') return fail(`unknown command \`vmgmt chat policy ${check}\`: use \`vmgmt chat policy check FROM TO\``);
      return { ok: true, command: { kind: 'chat-policy-check', from, to } };
    }
  }
}

function isVmSubcommand(s: string): s is VmSubcommand {
  return Object.hasOwn(VM_COMMANDS, s);
}

function wholeNumber(text: string, min: number): number | undefined {
  if (!/^[0-9]{1,15}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}
