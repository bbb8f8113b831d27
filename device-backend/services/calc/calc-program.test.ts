import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandArgv, mayCall, parseArgTemplate } from './calc-program.js';

const values = { vm: 'lab-1', group: 'lab', function: 'upper', job: '7', inputBytes: '123' };

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
