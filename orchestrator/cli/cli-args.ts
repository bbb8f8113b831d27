// Command line → a typed command, or a usage error that says what is wrong. Pure: argv and env in, value out.
import { parseArgs } from 'node:util';
import { DEFAULT_SOCKET_PATH } from './api-client.js';
import { parseCpArgs, type CpCommand } from './cp-args.js';

export type LogSourceArg = 'console' | 'qemu' | 'daemon';

export type CliCommand =
  | { kind: 'help' }
  | { kind: 'daemon'; configPath?: string; stateDir?: string; runtimeDir?: string; socketPath?: string; cluster?: string }
  | { kind: 'cluster-keygen'; file: string }
  | { kind: 'vm-create'; file: string }
  | { kind: 'vm-ls' }
  | { kind: 'vm-inspect' | 'vm-start' | 'vm-kill' | 'vm-console'; name: string }
  | { kind: 'vm-stop'; name: string; timeoutMs?: number }
  | { kind: 'vm-rm'; name: string; force: boolean }
  | { kind: 'vm-logs'; name: string; source?: LogSourceArg; tailBytes?: number }
  | { kind: 'stats'; name?: string; watch: boolean }
  | CpCommand
  | ChatCommand;

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
  /** group: the command word (`vm`, `cp`, ...) when argv got that far. */
  | { ok: false; message: string; globals: CliGlobals; group?: string };

const OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  config: { type: 'string' },
  'state-dir': { type: 'string' },
  'runtime-dir': { type: 'string' },
  file: { type: 'string', short: 'f' },
  timeout: { type: 'string' },
  force: { type: 'boolean' },
  source: { type: 'string' },
  tail: { type: 'string' },
  watch: { type: 'boolean' },
  as: { type: 'string' },
  exec: { type: 'string' },
  cluster: { type: 'string' },
} as const;
type OptionName = keyof typeof OPTIONS;

const GLOBAL_OPTIONS: readonly OptionName[] = ['socket', 'json', 'help'];

/** Each vm subcommand: its positional arguments and the options it takes beyond the global ones. */
const VM_COMMANDS = {
  create: { names: 0, options: ['file'] },
  ls: { names: 0, options: [] },
  inspect: { names: 1, options: [] },
  start: { names: 1, options: [] },
  stop: { names: 1, options: ['timeout'] },
  kill: { names: 1, options: [] },
  rm: { names: 1, options: ['force'] },
  logs: { names: 1, options: ['source', 'tail'] },
  console: { names: 1, options: [] },
} as const satisfies Record<string, { names: 0 | 1; options: readonly OptionName[] }>;
type VmSubcommand = keyof typeof VM_COMMANDS;

const VM_ALIASES: Readonly<Record<string, VmSubcommand>> = { list: 'ls', remove: 'rm', delete: 'rm' };

export function parseCli(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParsedCli {
  const fallbackGlobals: CliGlobals = {
    socketPath: env.VMGMT_SOCKET || DEFAULT_SOCKET_PATH,
    json: argv.includes('--json'),
  };
  let values: Partial<Record<OptionName, string | boolean>>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    return { ok: false, message: (err as Error).message.split('\n')[0] ?? String(err), globals: fallbackGlobals };
  }
  const socketFlag = values.socket as string | undefined;
  const globals: CliGlobals = { socketPath: socketFlag || fallbackGlobals.socketPath, json: values.json === true };
  const usage = (message: string): ParsedCli =>
    positionals[0] === undefined ? { ok: false, message, globals } : { ok: false, message, globals, group: positionals[0] };
  const done = (command: CliCommand): ParsedCli => ({ ok: true, command, globals });

  if (socketFlag === '') return usage('--socket needs a path');
  if (values.help === true || positionals[0] === 'help') return done({ kind: 'help' });

  const [group, sub, ...rest] = positionals;
  if (group === undefined) return usage('no command given');

  if (group === 'daemon') {
    const extra = unexpectedOptions(values, ['config', 'state-dir', 'runtime-dir', 'cluster']);
    if (extra) return usage(`${extra} does not apply to \`vmgmt daemon\``);
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
    const extra = unexpectedOptions(values, []);
    if (extra) return usage(`${extra} does not apply to \`vmgmt cp\``);
    const cp = parseCpArgs(positionals.slice(1));
    return cp.ok ? done(cp.command) : usage(cp.message);
  }

  if (group === 'chat') {
    const chat = parseChatArgs(positionals.slice(1), values);
    return chat.ok ? done(chat.command) : usage(chat.message);
  }

  if (group === 'cluster') {
    const extra = unexpectedOptions(values, []);
    if (extra) return usage(`${extra} does not apply to \`vmgmt cluster\``);
    if (sub !== 'keygen' || rest.length !== 1 || !rest[0]) return usage('usage: vmgmt cluster keygen FILE (writes a new NATS nkey seed to FILE, prints its public key)');
    return done({ kind: 'cluster-keygen', file: rest[0] });
  }

  if (group === 'stats') {
    const extra = unexpectedOptions(values, ['watch']);
    if (extra) return usage(`${extra} does not apply to \`vmgmt stats\``);
    if (rest.length > 0) return usage(`\`vmgmt stats\` takes at most one VM name; unexpected ${JSON.stringify(rest[0])}`);
    return done({ kind: 'stats', ...(sub === undefined ? {} : { name: sub }), watch: values.watch === true });
  }

  if (group !== 'vm') return usage(`unknown command ${JSON.stringify(group)}: use \`vmgmt daemon\`, \`vmgmt vm ...\`, \`vmgmt cp\`, \`vmgmt chat ...\` or \`vmgmt stats\``);
  if (sub === undefined) return usage(`\`vmgmt vm\` needs a subcommand: ${Object.keys(VM_COMMANDS).join(', ')}`);
  const subcommand = VM_ALIASES[sub] ?? sub;
  if (!isVmSubcommand(subcommand)) {
    return usage(`unknown command \`vmgmt vm ${sub}\`: use one of ${Object.keys(VM_COMMANDS).join(', ')}`);
  }
  const spec = VM_COMMANDS[subcommand];
  const extra = unexpectedOptions(values, spec.options);
  if (extra) return usage(`${extra} does not apply to \`vmgmt vm ${subcommand}\``);
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
    case 'ls':
      return done({ kind: 'vm-ls' });
    case 'inspect':
    case 'start':
    case 'kill':
    case 'console':
      return done({ kind: `vm-${subcommand}`, name });
    case 'stop': {
      if (values.timeout === undefined) return done({ kind: 'vm-stop', name });
      const timeoutMs = wholeNumber(values.timeout as string, 0);
      if (timeoutMs === undefined) return usage(`--timeout takes milliseconds as a whole number >= 0 (got ${JSON.stringify(values.timeout)})`);
      return done({ kind: 'vm-stop', name, timeoutMs });
    }
    case 'rm':
      return done({ kind: 'vm-rm', name, force: values.force === true });
    case 'logs': {
      const command: CliCommand & { kind: 'vm-logs' } = { kind: 'vm-logs', name };
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

const CHAT_COMMANDS = {
  peers: { args: [], options: ['watch'] },
  send: { args: ['TARGET', 'MESSAGE'], options: [] },
  call: { args: ['TARGET', 'MESSAGE'], options: ['timeout'] },
  listen: { args: [], options: ['as', 'exec'] },
  policy: { args: ['check', 'FROM', 'TO'], options: [] },
} as const satisfies Record<string, { args: readonly string[]; options: readonly OptionName[] }>;

const CHAT_NAME = /^[a-z0-9._-]{1,64}$/;

function parseChatArgs(args: string[], values: Partial<Record<OptionName, string | boolean>>): { ok: true; command: ChatCommand } | { ok: false; message: string } {
  const [sub, ...rest] = args;
  const fail = (message: string) => ({ ok: false as const, message });
  if (sub === undefined) return fail(`\`vmgmt chat\` needs a subcommand: ${Object.keys(CHAT_COMMANDS).join(', ')}`);
  if (!Object.hasOwn(CHAT_COMMANDS, sub)) return fail(`unknown command \`vmgmt chat ${sub}\`: use one of ${Object.keys(CHAT_COMMANDS).join(', ')}`);
  const spec = CHAT_COMMANDS[sub as keyof typeof CHAT_COMMANDS];
  const extra = unexpectedOptions(values, spec.options);
  if (extra) return fail(`${extra} does not apply to \`vmgmt chat ${sub}\``);
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

/** The first option given that neither the command nor the global set takes, as `--name`. */
function unexpectedOptions(values: Partial<Record<OptionName, unknown>>, allowed: readonly OptionName[]): string | undefined {
  for (const key of Object.keys(values) as OptionName[]) {
    if (values[key] === undefined || GLOBAL_OPTIONS.includes(key) || allowed.includes(key)) continue;
    return `--${key}`;
  }
  return undefined;
}

function wholeNumber(text: string, min: number): number | undefined {
  if (!/^[0-9]{1,15}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}
