import { describe, expect, it } from 'vitest';
import { parsePromText, promValue } from './prom-text.js';

describe('parsePromText', () => {
  it('reads help, type, labels with escapes, timestamps and special values', () => {
    const text = [
      '# HELP a_total Things, with a \\\\ backslash',
      '# TYPE a_total counter',
      'a_total{vm="x",path="C:\\\\dir \\"q\\"\\nnext"} 12 1700000000000',
      'a_total{vm="y"} 1.5e3',
      '# TYPE h histogram',
      'h_bucket{le="+Inf"} 3',
      'h_sum 0.25',
      'h_count 3',
      'g NaN',
      '# a plain comment',
      '',
    ].join('\n');
    const parsed = parsePromText(text);
    if (!parsed.ok) throw new Error(parsed.reason);
    const a = parsed.families.get('a_total')!;
    expect(a).toMatchObject({ type: 'counter', help: 'Things, with a \\ backslash' });
    expect(a.samples[0]).toEqual({ name: 'a_total', labels: { vm: 'x', path: 'C:\\dir "q"\nnext' }, value: 12 });
    expect(promValue(parsed.families, 'a_total', { vm: 'y' })).toBe(1500);
    expect(parsed.families.get('h')!.samples.map((s) => s.name)).toEqual(['h_bucket', 'h_sum', 'h_count']);
    expect(promValue(parsed.families, 'g')).toBeNaN();
    expect(() => promValue(parsed.families, 'a_total')).toThrow(/2 samples/);
    expect(promValue(parsed.families, 'a_total', { vm: 'z' })).toBeUndefined();
  });

  it('says which line is wrong and why', () => {
    expect(parsePromText('ok 1\nbad{vm=x} 1')).toMatchObject({ ok: false, line: 2, reason: expect.stringContaining('="value"') });
    expect(parsePromText('x{vm="a"} one')).toMatchObject({ ok: false, reason: expect.stringContaining('not a number') });
    expect(parsePromText('x{vm="a} 1')).toMatchObject({ ok: false, reason: expect.stringContaining('does not end') });
    expect(parsePromText('# TYPE x thing')).toMatchObject({ ok: false, reason: expect.stringContaining('unknown metric type') });
    expect(parsePromText('x{a="1",a="2"} 1')).toMatchObject({ ok: false, reason: expect.stringContaining('twice') });
  });
});
