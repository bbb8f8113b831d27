// The help pages, generated from the command table (command-help.ts) and, for the definition, from the
// zod schema (definition-help.ts). Keep README.md next to this file in step with the table. Pure.
import {
  COMMAND_GROUPS,
  COMMAND_HELP,
  findCommandHelp,
  GLOBAL_FLAGS,
  groupCommands,
  HELP_TOPICS,
  type CommandHelp,
  type FlagHelp,
  type HelpTopicName,
} from './command-help.js';
import { formatDefinitionHelp } from './definition-help.js';

const EXIT_CODES = `Exit codes:
  0  ok
  1  error from the daemon (other than below), or a local failure
     (cp: no guest agent, the guest refused, a local file cannot be read or written)
  2  usage error
  3  the daemon is not running (no socket, or nothing listening on it)
  4  not found
  5  conflict: the VM already exists, or its state does not allow the request
  6  invalid VM definition (each field problem is printed on its own line)
  7  timeout
  8  refused by chat (policy, queue full, too large, peer gone), a callee answered
     with a non-zero status, or chat policy check says denied
`;

/** A usage line: `vmgmt vm stop NAME [--timeout MS]`. */
export function usageLine(entry: CommandHelp): string {
  return ['vmgmt', ...entry.path, entry.args].filter(Boolean).join(' ');
}

/** Two columns: left padded to the widest (capped), right wrapped under it when the left is too long. */
function columns(rows: readonly (readonly [string, string])[], indent = '  ', cap = 38): string {
  const width = Math.min(cap, Math.max(0, ...rows.map(([l]) => l.length)));
  return rows
    .map(([l, r]) => (l.length > width ? `${indent}${l}\n${indent}${''.padEnd(width)}  ${r}` : `${indent}${l.padEnd(width)}  ${r}`).trimEnd())
    .join('\n');
}

function flagRows(flags: readonly FlagHelp[]): [string, string][] {
  return flags.map((f) => [f.value ? `${f.flag} ${f.value}` : f.flag, f.text]);
}

/** `vmgmt --help`: every command on one line, the global options and the exit codes. */
export function globalHelp(table: readonly CommandHelp[] = COMMAND_HELP): string {
  const rows: [string, string][] = table.map((e) => [usageLine(e), e.summary]);
  return [
    'vmgmt: run QEMU VMs with a virtual management device',
    '',
    'Usage:',
    columns(rows, '  ', 44),
    '',
    'Options for every command:',
    columns(flagRows(GLOBAL_FLAGS)),
    '',
    'Help on one command: vmgmt COMMAND --help (e.g. vmgmt vm create --help), or vmgmt help COMMAND.',
    'Every definition field: vmgmt help definition. Bash completion: source <(vmgmt completion bash).',
    '',
    EXIT_CODES,
  ].join('\n');
}

/** `vmgmt vm --help`: the group's commands. */
export function groupHelp(group: string, table: readonly CommandHelp[] = COMMAND_HELP): string {
  const commands = groupCommands(group, table);
  return [
    `vmgmt ${group}: ${COMMAND_GROUPS[group] ?? ''}`.trimEnd(),
    '',
    'Commands:',
    columns(commands.map((e) => [usageLine(e), e.summary]), '  ', 44),
    '',
    `Help on one: vmgmt ${group} COMMAND --help (e.g. vmgmt ${usageLine(commands[0]!).split(' ').slice(1, 3).join(' ')} --help).`,
    '',
  ].join('\n');
}

/** A command's own page: usage, what it does, its flags, examples (and its topic page). */
export function commandHelp(entry: CommandHelp): string {
  const parts = [`Usage: ${usageLine(entry)}`, '', `${entry.summary[0]!.toUpperCase()}${entry.summary.slice(1)}.`];
  if (entry.description) parts.push('', wrap(entry.description, 100));
  if (entry.aliases?.length) parts.push('', `Also: ${entry.aliases.map((a) => ['vmgmt', ...entry.path.slice(0, -1), a].join(' ')).join(', ')}`);
  if (entry.flags?.length) parts.push('', 'Options:', columns(flagRows(entry.flags)));
  parts.push('', 'Options for every command:', columns(flagRows(GLOBAL_FLAGS)));
  parts.push('', entry.examples.length > 1 ? 'Examples:' : 'Example:', ...entry.examples.map((x) => `  ${x}`), '');
  let text = parts.join('\n');
  if (entry.topic) text += '\n' + topicHelp(entry.topic);
  return text;
}

export function topicHelp(topic: HelpTopicName): string {
  switch (topic) {
    case 'definition':
      return formatDefinitionHelp();
  }
}

export type HelpPage = { ok: true; text: string } | { ok: false; message: string };

/**
 * The page for `vmgmt WORDS --help` or `vmgmt help WORDS`: a topic, a command (its longest known prefix, so
 * `vm logs web --help` is the page of `vm logs`), a group, or the global page for no words.
 */
export function helpFor(words: readonly string[], table: readonly CommandHelp[] = COMMAND_HELP): HelpPage {
  if (words.length === 0) return { ok: true, text: globalHelp(table) };
  const [first = ''] = words;
  if (Object.hasOwn(HELP_TOPICS, first)) return { ok: true, text: topicHelp(first as HelpTopicName) };
  const found = findCommandHelp(words, table);
  if (found) return { ok: true, text: commandHelp(found.entry) };
  if (groupCommands(first, table).length > 0) return { ok: true, text: groupHelp(first, table) };
  const known = [...new Set(table.map((e) => e.path[0]))].join(', ');
  return { ok: false, message: `no help for \`vmgmt ${words.join(' ')}\`: commands are ${known}; topics: ${Object.keys(HELP_TOPICS).join(', ')}` };
}

/** Words wrapped at width, keeping paragraphs. */
function wrap(text: string, width: number): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out.join('\n');
}
