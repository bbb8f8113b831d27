import { describe, expect, it } from 'vitest';
import { encodeQmpCommand, QmpFramer } from './qmp-framing.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}\r\n';

describe('QmpFramer', () => {
  it('decodes one message per line and strips CRLF', () => {
    const framer = new QmpFramer();
    expect(framer.push(enc('{"return": {}, "id": 1}\r\n'))).toEqual([{ ok: true, value: { return: {}, id: 1 } }]);
    expect(framer.pendingText).toBe('');
  });

  it('reassembles a message split at every possible byte offset', () => {
    const bytes = enc(GREETING);
    for (let cut = 1; cut < bytes.length; cut++) {
      const framer = new QmpFramer();
      expect(framer.push(bytes.subarray(0, cut))).toEqual([]);
      const frames = framer.push(bytes.subarray(cut));
      expect(frames).toHaveLength(1);
      expect(frames[0]).toMatchObject({ ok: true, value: { QMP: { capabilities: ['oob'] } } });
    }
  });

  it('reassembles a message fed one byte at a time, including a split UTF-8 sequence', () => {
    const framer = new QmpFramer();
    const frames = [...enc('{"error": {"class": "GenericError", "desc": "Gerät ✓ 🚀"}, "id": 3}\n')].flatMap((b) =>
      framer.push(Uint8Array.of(b)),
    );
    expect(frames).toEqual([{ ok: true, value: { error: { class: 'GenericError', desc: 'Gerät ✓ 🚀' }, id: 3 } }]);
  });

  it('returns several messages from one chunk, keeping the partial tail for later', () => {
    const framer = new QmpFramer();
    const frames = framer.push(enc('{"id": 1, "return": {}}\r\n{"event": "STOP"}\r\n\r\n{"id": 2, "ret'));
    expect(frames.map((f) => (f.ok ? f.value : f))).toEqual([{ id: 1, return: {} }, { event: 'STOP' }]);
    expect(framer.pendingText).toBe('{"id": 2, "ret');
    expect(framer.push(enc('urn": 5}\n'))).toEqual([{ ok: true, value: { id: 2, return: 5 } }]);
  });

  it('reports invalid JSON and keeps decoding the following lines', () => {
    const framer = new QmpFramer();
    const frames = framer.push(enc('{"broken": \n{"return": 1}\n'));
    expect(frames[0]).toMatchObject({ ok: false, code: 'INVALID_JSON', line: '{"broken":' });
    expect(frames[1]).toEqual({ ok: true, value: { return: 1 } });
  });

  it('reports an over-long line once and resynchronises at the next newline', () => {
    const framer = new QmpFramer({ maxLineChars: 10 });
    expect(framer.push(enc('{"a": "0123456789'))).toEqual([{ ok: false, code: 'LINE_TOO_LONG', lengthChars: 17, maxLineChars: 10 }]);
    expect(framer.push(enc('more garbage'))).toEqual([]);
    expect(framer.push(enc('"}\n{"b": 1}\n'))).toEqual([{ ok: true, value: { b: 1 } }]);
  });
});

describe('encodeQmpCommand', () => {
  it('encodes command, arguments and id as one newline-terminated line', () => {
    expect(encodeQmpCommand('stop', undefined, 4)).toBe('{"execute":"stop","id":4}\n');
    expect(JSON.parse(encodeQmpCommand('device_del', { id: 'x' }, 'a'))).toEqual({ execute: 'device_del', arguments: { id: 'x' }, id: 'a' });
  });
});
