import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FILE_TYPE } from '../../layout/wire-layout.js';
import { checkEntryName, decodeListing, encodeListing } from './agent-listing.js';

const bytes = (s: string | number[]): Uint8Array => (typeof s === 'string' ? new TextEncoder().encode(s) : new Uint8Array(s));

describe('checkEntryName', () => {
  it.each([
    ['a.txt', undefined],
    ['..hidden', undefined],
    ['ünïcode', undefined],
    ['', 'the name is empty'],
    ['.', "the name is '.' (this directory)"],
    ['..', "the name is '..' (the parent directory)"],
    ['a/b', "the name contains '/' (it would reach another directory)"],
    ['a\nb', 'the name contains a control character'],
    ['a\u007fb', 'the name contains a control character'],
    ['x'.repeat(256), 'the name is 256 bytes, longer than 255'],
  ])('%j → %j', (name, why) => {
    expect(checkEntryName(bytes(name))).toBe(why);
  });

  it('refuses a NUL byte and invalid UTF-8, each with its own reason', () => {
    expect(checkEntryName(bytes([0x61, 0x00, 0x62]))).toBe('the name contains a NUL byte');
    expect(checkEntryName(bytes([0x61, 0xff, 0x62]))).toBe('the name is not valid UTF-8');
  });
});

describe('decodeListing', () => {
  it('decodes files, directories and the special kinds from type and st_mode', () => {
    const listing = encodeListing([
      { name: 'f', type: FILE_TYPE.FILE, mode: 0o100644, size: 12 },
      { name: 'd', type: FILE_TYPE.DIR, mode: 0o040755 },
      { name: 'l', type: FILE_TYPE.SYMLINK, mode: 0o120777 },
      { name: 'p', type: FILE_TYPE.OTHER, mode: 0o010644 },
      { name: 's', type: FILE_TYPE.OTHER, mode: 0o140755 },
      { name: 'c', type: FILE_TYPE.OTHER, mode: 0o020600 },
    ]);
    const r = decodeListing(listing);
    expect(r).toEqual({
      ok: true,
      refused: [],
      entries: [
        { name: 'f', kind: 'file', sizeBytes: 12, mode: 0o644 },
        { name: 'd', kind: 'dir', sizeBytes: 0, mode: 0o755 },
        { name: 'l', kind: 'symlink', sizeBytes: 0, mode: 0o777 },
        { name: 'p', kind: 'fifo', sizeBytes: 0, mode: 0o644 },
        { name: 's', kind: 'socket', sizeBytes: 0, mode: 0o755 },
        { name: 'c', kind: 'device', sizeBytes: 0, mode: 0o600 },
      ],
    });
  });

  it('sets refused names aside with their reasons and keeps the rest', () => {
    const r = decodeListing(
      encodeListing([
        { name: '..', type: FILE_TYPE.DIR, mode: 0o040755 },
        { name: '../../etc', type: FILE_TYPE.DIR, mode: 0o040755 },
        { name: 'ok', type: FILE_TYPE.FILE, mode: 0o100600 },
        { name: bytes([0x62, 0x01]), type: FILE_TYPE.FILE, mode: 0o100600 },
      ]),
    );
    expect(r).toMatchObject({ ok: true, entries: [{ name: 'ok' }] });
    if (!r.ok) throw new Error('not ok');
    expect(r.refused).toEqual([
      { shownName: '".."', reason: "the name is '..' (the parent directory)" },
      { shownName: '"../../etc"', reason: "the name contains '/' (it would reach another directory)" },
      { shownName: '"b\\u0001"', reason: 'the name contains a control character' },
    ]);
  });

  it('fails a listing whose type and mode disagree (a "file" that is a fifo), or that is cut short', () => {
    expect(decodeListing(encodeListing([{ name: 'x', type: FILE_TYPE.FILE, mode: 0o010644 }]))).toMatchObject({ ok: false, reason: expect.stringMatching(/do not agree/) });
    expect(decodeListing(encodeListing([{ name: 'x', type: 9, mode: 0o100644 }]))).toMatchObject({ ok: false });
    const whole = encodeListing([{ name: 'abcdef', type: FILE_TYPE.FILE, mode: 0o100644 }]);
    expect(decodeListing(whole.subarray(0, 10))).toMatchObject({ ok: false, reason: expect.stringMatching(/ends inside a record/) });
    expect(decodeListing(whole.subarray(0, 26))).toMatchObject({ ok: false, reason: expect.stringMatching(/runs past the end/) });
  });

  it('an empty listing is an empty directory', () => {
    expect(decodeListing(new Uint8Array(0))).toEqual({ ok: true, entries: [], refused: [] });
  });
});

describe('decodeListing on anything a guest may send', () => {
  it('never throws, and every name it lets through is one path component', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (raw) => {
        const r = decodeListing(raw);
        if (!r.ok) return;
        for (const e of r.entries) {
          expect(e.name).not.toMatch(/[/\u0000-\u001f\u007f]/);
          expect(['', '.', '..']).not.toContain(e.name);
          expect(e.mode).toBeLessThanOrEqual(0o7777);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('takes well-formed records with hostile names: the bad ones are refused, the rest come through', () => {
    const name = fc.uint8Array({ minLength: 0, maxLength: 300 });
    fc.assert(
      fc.property(fc.array(name, { maxLength: 20 }), (names) => {
        const r = decodeListing(encodeListing(names.map((n) => ({ name: n, type: FILE_TYPE.FILE, mode: 0o100644 }))));
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.entries.length + r.refused.length).toBe(names.length);
        expect(r.refused.length).toBe(names.filter((n) => checkEntryName(n) !== undefined).length);
      }),
      { numRuns: 500 },
    );
  });
});
