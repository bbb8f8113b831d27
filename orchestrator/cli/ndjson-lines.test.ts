import { describe, expect, it } from 'vitest';
import { NdjsonLineSplitter } from './ndjson-lines.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('NdjsonLineSplitter', () => {
  it('returns whole lines whatever the chunk boundaries', () => {
    const text = '{"event":"progress","bytes":1}\n{"event":"done","bytes":2}\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const s = new NdjsonLineSplitter();
      const a = s.push(bytes(text.slice(0, cut)));
      const b = s.push(bytes(text.slice(cut)));
      const lines = [a, b, s.end()].flatMap((r) => (r.ok ? r.lines : ['ERR']));
      expect(lines, `cut at ${cut}`).toEqual(['{"event":"progress","bytes":1}', '{"event":"done","bytes":2}']);
    }
  });

  it('joins a UTF-8 character split across chunks, one byte at a time', () => {
    const s = new NdjsonLineSplitter();
    const all = bytes('{"message":"ünïcødé ✓"}\n');
    const lines: string[] = [];
    for (const b of all) {
      const r = s.push(Uint8Array.of(b));
      if (r.ok) lines.push(...r.lines);
    }
    expect(lines).toEqual(['{"message":"ünïcødé ✓"}']);
  });

  it('skips blank lines, drops \\r, and keeps a last line without a newline for end()', () => {
    const s = new NdjsonLineSplitter();
    expect(s.push(bytes('\n{"a":1}\r\n\n{"b"'))).toEqual({ ok: true, lines: ['{"a":1}'] });
    expect(s.push(bytes(':2}'))).toEqual({ ok: true, lines: [] });
    expect(s.end()).toEqual({ ok: true, lines: ['{"b":2}'] });
    expect(s.end()).toEqual({ ok: true, lines: [] });
  });

  it('reports a line over the limit', () => {
    const s = new NdjsonLineSplitter(8);
    expect(s.push(bytes('12345678'))).toEqual({ ok: true, lines: [] });
    expect(s.push(bytes('9'))).toMatchObject({ ok: false, reason: expect.stringMatching(/longer than 8/) });
    expect(new NdjsonLineSplitter(4).push(bytes('123456\n'))).toMatchObject({ ok: false });
  });
});
