import { describe, expect, it } from 'vitest';
import { GuestMemory, GuestMemoryError } from './guest-memory.js';

describe('GuestMemory', () => {
  const mem = new GuestMemory(new ArrayBuffer(64));

  it('stores and loads 32- and 64-bit values little-endian', () => {
    mem.storeU64(8, 0x1122334455667788n);
    expect(mem.loadU32(8)).toBe(0x55667788);
    expect(mem.loadU64(8)).toBe(0x1122334455667788n);
    mem.storeI32(16, -3);
    expect(mem.loadI32(16)).toBe(-3);
    expect(mem.loadU32(16)).toBe(0xfffffffd);
  });

  it('copyOut returns a private copy', () => {
    mem.write(32, new Uint8Array([1, 2, 3]));
    const copy = mem.copyOut(32, 3);
    mem.write(32, new Uint8Array([7]));
    expect([...copy]).toEqual([1, 2, 3]);
  });

  it.each([
    ['read past the end', () => mem.copyOut(60, 8)],
    ['negative offset', () => mem.loadU32(-4)],
    ['huge length', () => mem.view(0, Number.MAX_SAFE_INTEGER)],
    ['fractional offset', () => mem.copyOut(1.5, 1)],
    ['store past the end', () => mem.storeU32(64, 1)],
  ])('refuses %s', (_name, access) => {
    expect(access).toThrow(GuestMemoryError);
  });

  it('refuses a misaligned word access', () => {
    expect(() => mem.loadU32(2)).toThrow(/not aligned/);
  });
});
