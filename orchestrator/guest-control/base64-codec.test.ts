import { describe, expect, it } from 'vitest';
import { Base64StreamDecoder, decodeBase64, encodeBase64 } from './base64-codec.js';
import { encodeCommandLine } from './control-protocol.js';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('base64 codec', () => {
  it('matches the RFC 4648 test vectors', () => {
    const vectors: Array<[string, string]> = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      expect(encodeBase64(ascii(plain))).toBe(encoded);
      expect(decodeBase64(encoded)).toEqual({ ok: true, bytes: ascii(plain) });
    }
  });

  it('round-trips every byte value and agrees with Buffer', () => {
    const bytes = new Uint8Array(256 * 3 + 1).map((_, i) => i & 0xff);
    const encoded = encodeBase64(bytes);
    expect(encoded).toBe(Buffer.from(bytes).toString('base64'));
    expect(decodeBase64(encoded)).toEqual({ ok: true, bytes });
  });

  it('decodes groups split across pieces', () => {
    const decoder = new Base64StreamDecoder();
    const parts = ['Zm', '9vY', 'mE', '='].map((p) => decoder.push(ascii(p)));
    const bytes = parts.flatMap((p) => (p.ok ? [...p.bytes] : []));
    expect(new TextDecoder().decode(new Uint8Array(bytes))).toBe('fooba');
    expect(decoder.finish().ok).toBe(true);
  });

  it('rejects bad characters, misplaced padding and incomplete groups', () => {
    expect(decodeBase64('Zm9v!A==').ok).toBe(false);
    expect(decodeBase64('Z===').ok).toBe(false);
    expect(decodeBase64('Zm=v').ok).toBe(false);
    expect(decodeBase64('Zg==Zg==').ok).toBe(false);
    expect(decodeBase64('Zm9').ok).toBe(false);
    expect(decodeBase64('Zm9v\n').ok).toBe(false);
  });
});

describe('encodeCommandLine', () => {
  it('writes id, UTF-8 size and base64 on one line', () => {
    expect(new TextDecoder().decode(encodeCommandLine('ab-1', 'echo é'))).toBe(`ab-1 7 ${Buffer.from('echo é').toString('base64')}\n`);
  });

  it('refuses ids the guest would ignore', () => {
    expect(() => encodeCommandLine('a b', 'true')).toThrow(RangeError);
    expect(() => encodeCommandLine('', 'true')).toThrow(RangeError);
    expect(() => encodeCommandLine('x'.repeat(65), 'true')).toThrow(RangeError);
  });
});
