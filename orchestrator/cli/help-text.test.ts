import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { vmDefinitionSchema } from '../api/api-contract.js';
import { parseCli } from './cli-args.js';
import { COMMAND_HELP, documentedOptions, findCommandHelp, GLOBAL_FLAGS } from './command-help.js';
import { bashCompletionScript } from './completion-bash.js';
import { definitionFieldRows, formatDefinitionHelp } from './definition-help.js';
import { commandHelp, globalHelp, helpFor } from './help-text.js';

describe('help from the command table', () => {
  it('gives every command its own page with its flags and an example', () => {
    for (const entry of COMMAND_HELP) {
      const page = helpFor([...entry.path]);
      expect(page.ok).toBe(true);
      if (!page.ok) continue;
      expect(page.text).toContain(`Usage: vmgmt ${entry.path.join(' ')}`);
      expect(page.text).toMatch(/Examples?:\n {2}\S*.*vmgmt /);
      for (const f of entry.flags ?? []) expect(page.text).toContain(f.flag);
      expect(globalHelp()).toContain(`vmgmt ${entry.path.join(' ')}`);
    }
  });

  it('answers `X --help` and `help X` with the same page, and a group with its commands', () => {
    const viaFlag = parseCli(['vm', 'create', '--help'], {});
    const viaHelp = parseCli(['help', 'vm', 'create'], {});
    expect(viaFlag.ok && viaHelp.ok).toBe(true);
    if (!viaFlag.ok || !viaHelp.ok || viaFlag.command.kind !== 'help' || viaHelp.command.kind !== 'help') throw new Error('not help');
    expect(helpFor(viaFlag.command.words)).toEqual(helpFor(viaHelp.command.words));
    const vm = helpFor(['vm']);
    expect(vm.ok && vm.text).toMatch(/^vmgmt vm: .*\n\nCommands:\n {2}vmgmt vm create -f FILE/);
    expect(helpFor(['cp'])).not.toEqual(helpFor(['vm']));
    expect(helpFor(['vm', 'list'])).toEqual(helpFor(['vm', 'ls']));
    expect(helpFor(['frob'])).toMatchObject({ ok: false, message: expect.stringMatching(/^no help for `vmgmt frob`: commands are daemon, vm, cp/) });
  });

  it('documents every option each command parses, and the parser takes every documented one', () => {
    // Each flag a command documents parses (with a value if it has a placeholder).
    for (const entry of COMMAND_HELP) {
      for (const f of entry.flags ?? []) {
        const long = `--${documentedOptions({ ...entry, flags: [f] })[0]}`;
        const argv = [...entry.path, ...(f.value ? [`${long}=${f.choices?.[0] ?? '1'}`] : [long])];
        const parsed = parseCli(argv, {});
        if (!parsed.ok) expect(parsed.message).not.toMatch(/unknown option|does not apply/);
      }
    }
    expect(findCommandHelp(['vm', 'logs', 'web'])?.entry.path).toEqual(['vm', 'logs']);
    expect(GLOBAL_FLAGS.map((f) => f.flag)).toEqual(['--socket', '--json', '-h, --help']);
  });
});

describe('vmgmt help definition', () => {
  it('lists every field of the schema, at every depth, with its default or that it is required', () => {
    const rows = definitionFieldRows();
    const paths = rows.map((r) => r.path);
    for (const key of Object.keys(vmDefinitionSchema.shape)) expect(paths).toContain(key);
    for (const key of ['device.ringSlots', 'files.root', 'files.owner.uid', 'restart.policy', 'cpu.capPercent', 'boot.kernel', 'boot.disk']) expect(paths).toContain(key);
    expect(rows.find((r) => r.path === 'name')).toMatchObject({ type: 'string', presence: 'required' });
    expect(rows.find((r) => r.path === 'memoryMiB')).toMatchObject({ type: 'integer', bounds: '64..1048576', presence: 'default 256' });
    expect(rows.find((r) => r.path === 'device.slotSizeBytes')).toMatchObject({ bounds: '64..4096, a multiple of 64' });
    expect(rows.find((r) => r.path === 'device.ringSlots')?.bounds).toContain('a power of two');
    expect(rows.find((r) => r.path === 'accel')).toMatchObject({ type: 'tcg | kvm | auto', presence: 'default "auto"' });
    expect(rows.find((r) => r.path === 'files')).toMatchObject({ presence: 'optional' });
  });

  it('follows the schema: a field added there shows up without touching the help', () => {
    const grown = z.object({ name: z.string(), network: z.object({ mode: z.enum(['none', 'user']).default('none') }).strict().default({ mode: 'none' }).describe('the VM network') }).strict();
    expect(definitionFieldRows(grown, {})).toEqual([
      { path: 'name', type: 'string', bounds: '', presence: 'required', note: '' },
      { path: 'network', type: 'object', bounds: '', presence: "default: each field's", note: 'the VM network' },
      { path: 'network.mode', type: 'none | user', bounds: '', presence: 'default "none"', note: '' },
    ]);
  });

  it('is part of `vm create --help`', () => {
    const entry = findCommandHelp(['vm', 'create'])!.entry;
    expect(commandHelp(entry)).toContain(formatDefinitionHelp());
    expect(helpFor(['definition'])).toEqual({ ok: true, text: formatDefinitionHelp() });
  });
});

describe('vmgmt completion bash', () => {
  const script = bashCompletionScript();
  /** Runs the completion function in a real bash for a command line ending in the word to complete. */
  const complete = (line: string): string[] => {
    const words = line.split(' ');
    const program = `${script}
vmgmt() { if [[ "$*" == *"vm ls -q"* ]]; then printf 'web\\nweb2\\ndb\\n'; fi; }
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_vmgmt; printf '%s\\n' "\${COMPREPLY[@]}"`;
    return execFileSync('bash', ['-c', program], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  };

  it('is valid bash', () => {
    expect(() => execFileSync('bash', ['-n'], { input: script })).not.toThrow();
  });

  it('completes groups, subcommands, flags, flag values and VM names', () => {
    expect(complete('vmgmt v')).toEqual(['vm']);
    expect(complete('vmgmt vm lo')).toEqual(['logs']);
    expect(complete('vmgmt vm logs --s')).toEqual(['--socket', '--source']);
    expect(complete('vmgmt vm logs --source q')).toEqual(['qemu']);
    expect(complete('vmgmt vm start w')).toEqual(['web', 'web2']);
    expect(complete('vmgmt vm logs --tail 10 d')).toEqual(['db']);
    expect(complete('vmgmt completion b')).toEqual(['bash']);
    expect(complete('vmgmt help def')).toEqual(['definition']);
    // -f is a switch of vm logs (a VM name follows) but takes a file in vm create.
    expect(complete('vmgmt vm logs -f w')).toEqual(['web', 'web2']);
    expect(complete('vmgmt vm create -f /et')).toEqual(['/etc']);
    expect(complete('vmgmt --socket /tmp/x.sock vm start d')).toEqual(['db']);
  });
});
