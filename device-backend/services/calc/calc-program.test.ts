import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ARG_PATTERN, expandArgv, mayCall, parseArgTemplate, refuseArgs } from './calc-program.js';

const values = { vm: 'lab-1', group: 'lab', function: 'upper', job: '7', inputBytes: '123', args: [] as string[] };

describe('argv templates', () => {
  it('replaces each placeholder inside an argument, as one argument, never split', () => {
    expect(expandArgv(['/usr/bin/tool', '--vm={vm}', '{inputBytes}', 'job-{job}-{function}', 'plain'], values)).toEqual(['/usr/bin/tool', '--vm=lab-1', '123', 'job-7-upper', 'plain']);
    expect(expandArgv(['/bin/x', '{vm}'], { ...values, vm: 'a b; rm -rf /' })).toEqual(['/bin/x', 'a b; rm -rf /']);
    expect(expandArgv(['/bin/x', '{group}'], { ...values, group: '' })).toEqual(['/bin/x', '']);
  });

  it('doubled braces are literal; unknown, unclosed or lone braces are refused with why', () => {
    expect(expandArgv(['/bin/x', '{{vm}}', '}}{{{vm}}}'], values)).toEqual(['/bin/x', '{vm}', '}{lab-1}']);
    expect(parseArgTemplate('{home}')).toEqual({ ok: false, reason: expect.stringMatching(/^unknown placeholder \{home\}: use one of \{vm\} \{group\}/) });
    expect(parseArgTemplate('x{vm')).toEqual({ ok: false, reason: expect.stringMatching(/^unclosed \{ at character 1/) });
    expect(parseArgTemplate('a}b')).toEqual({ ok: false, reason: expect.stringMatching(/^lone \} at character 1/) });
    expect(() => expandArgv(['{nope}'], values)).toThrow(/unknown placeholder/);
  });

  it('{args} is the guest\'s arguments, one argv element each, and only a whole argument', () => {
    expect(expandArgv(['/bin/x', '-n', '{args}', 'end'], { ...values, args: ['a b', '2'] })).toEqual(['/bin/x', '-n', 'a b', '2', 'end']);
    expect(expandArgv(['/bin/x', '{args}'], values)).toEqual(['/bin/x']);
    expect(parseArgTemplate('--x={args}')).toEqual({ ok: false, reason: expect.stringMatching(/whole argument/) });
  });

  it('guest arguments: none unless the config allows, at most max, each matching all of the pattern', () => {
    const none = { name: 'p', args: { max: 0, pattern: DEFAULT_ARG_PATTERN } };
    const two = { name: 'p', args: { max: 2, pattern: DEFAULT_ARG_PATTERN } };
    expect(refuseArgs(none, ['x'])).toMatch(/takes no arguments/);
    expect(refuseArgs(two, ['a', 'b'])).toBeUndefined();
    expect(refuseArgs(two, ['a', 'b', 'c'])).toMatch(/at most 2 arguments, got 3/);
    expect(refuseArgs(two, ['--output=/etc/passwd'])).toMatch(/argument 1 .* does not match/);
    expect(refuseArgs(two, ['ok', '../x'])).toMatch(/argument 2/);
    // The pattern must match the whole argument, not a part of it.
    expect(refuseArgs({ name: 'p', args: { max: 1, pattern: '[0-9]+' } }, ['12; x'])).toMatch(/does not match/);
  });

  it('text without braces comes out as it went in', () => {
    fc.assert(
      fc.property(fc.array(fc.string().filter((s) => !s.includes('{') && !s.includes('}'))), (args) => {
        expect(expandArgv(args, values)).toEqual(args);
      }),
    );
  });
});

describe('allow-list', () => {
  const program = { allow: { vms: ['a', 'b'], groups: ['lab'] } };
  it('admits a VM by its name or by its group, nothing else', () => {
    expect(mayCall(program, { vm: 'a' })).toBe(true);
    expect(mayCall(program, { vm: 'z', group: 'lab' })).toBe(true);
    expect(mayCall(program, { vm: 'z', group: 'prod' })).toBe(false);
    expect(mayCall(program, { vm: 'z' })).toBe(false);
    expect(mayCall({ allow: { vms: [], groups: [] } }, { vm: 'a', group: 'lab' })).toBe(false);
  });
});
