import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { completeUtf8Length, readLogChunk } from './file-tail.js';

describe('readLogChunk', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-tail-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the tail, then what was added from its end on, without splitting a character', () => {
    const file = path.join(dir, 'console.log');
    writeFileSync(file, 'line 1\nline 2\n');
    const first = readLogChunk(file, { tailBytes: 7, maxBytes: 1024 });
    expect(first).toEqual({ text: 'line 2\n', endByte: 14 });
    // A write that ends inside a character: the partial character waits for the next read.
    const euro = Buffer.from('€');
    appendFileSync(file, Buffer.concat([Buffer.from('cost 3'), euro.subarray(0, 2)]));
    const second = readLogChunk(file, { tailBytes: 7, fromByte: first.endByte, maxBytes: 1024 });
    expect(second).toEqual({ text: 'cost 3', endByte: 20 });
    appendFileSync(file, Buffer.concat([euro.subarray(2), Buffer.from('\n')]));
    expect(readLogChunk(file, { tailBytes: 7, fromByte: second.endByte, maxBytes: 1024 })).toEqual({ text: '€\n', endByte: 24 });
    // A log replaced by a shorter one starts again at 0; a missing one is empty.
    writeFileSync(file, 'new\n');
    expect(readLogChunk(file, { tailBytes: 7, fromByte: 24, maxBytes: 1024 })).toEqual({ text: 'new\n', endByte: 4 });
    expect(readLogChunk(path.join(dir, 'none'), { tailBytes: 7, maxBytes: 1024 })).toEqual({ text: '', endByte: 0 });
  });

  it('counts whole UTF-8 characters', () => {
    const e = Buffer.from('a€');
    expect(completeUtf8Length(e)).toBe(4);
    expect(completeUtf8Length(e.subarray(0, 3))).toBe(1);
    expect(completeUtf8Length(e.subarray(0, 2))).toBe(1);
    expect(completeUtf8Length(Buffer.from('abc'))).toBe(3);
  });
});
