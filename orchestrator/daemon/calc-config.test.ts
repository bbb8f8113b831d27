import { describe, expect, it } from 'vitest';
import { zodProblems } from '../api/field-problems.js';
import { DEFAULT_ARG_PATTERN } from '../../device-backend/services/calc/calc-program.js';
import { calcConfigSchema, resolveCalcConfig } from './calc-config.js';
import { parseDaemonConfig } from './daemon-config.js';

const problems = (calc: unknown) => {
  const r = calcConfigSchema.safeParse(calc);
  return r.success ? [] : zodProblems(r.error);
};

describe('calc config section', () => {
  it('fills in every default: nobody/nogroup, 1 GiB budget, no programs; a program admits no one by default', () => {
    expect(resolveCalcConfig(calcConfigSchema.parse({}))).toEqual({ outputBudgetBytes: 1024 ** 3, programs: [] });
    const [p] = resolveCalcConfig(calcConfigSchema.parse({ programs: [{ name: 'wc', argv: ['/usr/bin/wc', '-l'] }] })).programs;
    expect(p).toEqual({
      name: 'wc',
      description: 'host program /usr/bin/wc',
      argv: ['/usr/bin/wc', '-l'],
      timeoutMs: 30_000,
      maxOutputBytes: 64 * 1024 * 1024,
      maxPerVm: 1,
      maxHostWide: 4,
      cpuPercent: 100,
      memoryMaxBytes: 256 * 1024 * 1024,
      pidsMax: 64,
      allow: { vms: [], groups: [] },
      user: 'nobody',
      group: 'nogroup',
      args: { max: 0, pattern: DEFAULT_ARG_PATTERN },
    });
  });

  it('reads a full declaration; a program may name its own account', () => {
    const [p] = resolveCalcConfig(
      calcConfigSchema.parse({
        user: 'calc',
        group: 'calc',
        outputBudgetBytes: 1000,
        programs: [{ name: 'up', description: 'upper', argv: ['/usr/bin/tr', 'a-z', 'A-Z'], timeoutMs: 500, maxOutputBytes: 10, concurrency: { perVm: 2, hostWide: 3 }, limits: { cpuPercent: 50, memoryMiB: 8, pidsMax: 4 }, allow: { vms: ['a'], groups: ['lab'] }, user: '1234' }],
      }),
    ).programs;
    expect(p).toMatchObject({ timeoutMs: 500, maxOutputBytes: 10, maxPerVm: 2, maxHostWide: 3, cpuPercent: 50, memoryMaxBytes: 8 * 1024 * 1024, pidsMax: 4, allow: { vms: ['a'], groups: ['lab'] }, user: '1234', group: 'calc' });
  });

  it('refuses root, a shell-less argv that is not absolute, bad templates, built-in names and duplicates, each by field', () => {
    const byPath = (calc: unknown) => Object.fromEntries(problems(calc).map((p) => [p.path, p.message]));
    expect(byPath({ user: 'root' })).toEqual({ user: expect.stringMatching(/never runs as root/) });
    expect(byPath({ group: '0' })).toEqual({ group: expect.stringMatching(/never runs as root/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['tr', 'a'] }] })).toEqual({ 'programs.0.argv': expect.stringMatching(/absolute path/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/{vm}'] }] })).toEqual({ 'programs.0.argv': expect.stringMatching(/without placeholders/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x', '{home}'] }] })).toEqual({ 'programs.0.argv.1': expect.stringMatching(/unknown placeholder \{home\}/) });
    expect(byPath({ programs: [{ name: 'sha256', argv: ['/bin/x'] }] })).toEqual({ 'programs.0.name': expect.stringMatching(/built-in/) });
    expect(byPath({ programs: [{ name: 'Up', argv: ['/bin/x'] }] })).toEqual({ 'programs.0.name': expect.stringMatching(/a-z 0-9/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x'], shell: true }] })).toEqual({ 'programs.0': expect.stringMatching(/shell/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x'], description: 'two\nlines' }] })).toEqual({ 'programs.0.description': 'one line' });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x'] }, { name: 'x', argv: ['/bin/y'] }] })).toEqual({ 'programs.1.name': 'x is declared twice' });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x'], limits: { memoryMiB: 1 } }] })).toEqual({ 'programs.0.limits.memoryMiB': expect.any(String) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x'], args: { max: 2 } }] })).toEqual({ 'programs.0.argv': expect.stringMatching(/no \{args\}/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x', '{args}'], args: { max: 2, pattern: '([' } }] })).toEqual({ 'programs.0.args.pattern': expect.stringMatching(/regular expression/) });
    expect(byPath({ programs: [{ name: 'x', argv: ['/bin/x', '-o{args}'] }] })).toEqual({ 'programs.0.argv.1': expect.stringMatching(/whole argument/) });
    expect(problems({ programs: [{ name: 'x', argv: ['/bin/x', '{args}'], args: { max: 2, pattern: '[0-9]+' } }] })).toEqual([]);
  });

  it('is the daemon config file\'s calc section', () => {
    const r = parseDaemonConfig(JSON.stringify({ calc: { programs: [{ name: 'wc', argv: ['/usr/bin/wc'], allow: { groups: ['lab'] } }] } }));
    expect(r.ok && r.file.calc.programs[0]!.allow).toEqual({ vms: [], groups: ['lab'] });
    const bad = parseDaemonConfig(JSON.stringify({ calc: { programs: [{ name: 'wc', argv: [] }] } }));
    expect(bad.ok ? [] : bad.problems.map((p) => p.path)).toEqual(['calc.programs.0.argv']);
  });
});
