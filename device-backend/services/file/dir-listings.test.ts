import { describe, expect, it } from 'vitest';
import { decodeCookie, DirListings, encodeCookie, LISTING_LIMITS } from './dir-listings.js';

const A = { dev: 1, ino: 10 };
const B = { dev: 1, ino: 11 };

describe('list cookies', () => {
  it('carry a tag and an index, and grow with the index', () => {
    expect(decodeCookie(encodeCookie(1, 0))).toEqual({ tag: 1, index: 0 });
    expect(decodeCookie(encodeCookie(255, 0xffffff))).toEqual({ tag: 255, index: 0xffffff });
    expect(encodeCookie(255, 0xffffff)).toBe(0xffffffff);
    expect(encodeCookie(3, 129)).toBeGreaterThan(encodeCookie(3, 128));
    expect(encodeCookie(1, 0)).toBeGreaterThan(0xffffff); // never 0, never a bare index
    expect(decodeCookie(0)).toEqual({ tag: 0, index: 0 });
    expect(decodeCookie(42)).toEqual({ tag: 0, index: 42 });
    expect(() => encodeCookie(0, 1)).toThrow(RangeError);
    expect(() => encodeCookie(256, 1)).toThrow(RangeError);
    expect(() => encodeCookie(1, 1 << 24)).toThrow(RangeError);
  });
});

describe('DirListings', () => {
  it('keeps a snapshot per channel and directory, found by tag until dropped', () => {
    const l = new DirListings();
    const tag = l.keep(0, A, ['a', 'b'], 0);
    expect(l.find(0, tag, A, 1)).toEqual(['a', 'b']);
    expect(l.find(1, tag, A, 1)).toBeUndefined(); // another channel
    expect(l.find(0, tag, B, 1)).toBeUndefined(); // the path now names another directory: dropped
    expect(l.find(0, tag, A, 1)).toBeUndefined();
    const again = l.keep(0, A, ['a'], 2, tag); // re-read under the guest's tag
    expect(again).toBe(tag);
    l.drop(0, tag);
    expect(l.count).toBe(0);
  });

  it('drops snapshots idle for longer than their lifetime', () => {
    const l = new DirListings();
    const tag = l.keep(0, A, ['a'], 0);
    expect(l.find(0, tag, A, LISTING_LIMITS.IDLE_MS)).toEqual(['a']); // use renews it
    expect(l.find(0, tag, A, 2 * LISTING_LIMITS.IDLE_MS)).toEqual(['a']);
    expect(l.find(0, tag, A, 3 * LISTING_LIMITS.IDLE_MS + 1)).toBeUndefined();
  });

  it('bounds snapshots per channel and names held per VM, evicting the least recently used', () => {
    const l = new DirListings({ ...LISTING_LIMITS, MAX_PER_CHANNEL: 2, MAX_NAMES_HELD: 5 });
    const t1 = l.keep(0, A, ['a'], 0);
    const t2 = l.keep(0, B, ['b'], 1);
    l.find(0, t1, A, 2);
    const t3 = l.keep(0, { dev: 1, ino: 12 }, ['c'], 3);
    expect([t1, t2, t3].map((t, i) => l.find(0, t, [A, B, { dev: 1, ino: 12 }][i]!, 4) !== undefined)).toEqual([true, false, true]);
    l.keep(1, A, ['x', 'y', 'z'], 5); // 1 + 1 + 3 = 5 names: all fit
    expect(l.namesHeld).toBe(5);
    l.keep(2, A, ['p', 'q'], 6); // over: the oldest others go
    expect(l.namesHeld).toBeLessThanOrEqual(5);
    expect(l.find(2, 1, A, 7)).toEqual(['p', 'q']);
    expect(l.keep(3, A, ['1', '2', '3', '4', '5', '6'], 8)).toBeGreaterThan(0); // larger than the bound: not kept
    expect(l.find(3, 1, A, 9)).toBeUndefined();
  });

  it('gives fresh tags that skip the ones in use, and forgets a channel on reset', () => {
    const l = new DirListings({ ...LISTING_LIMITS, MAX_PER_CHANNEL: 300 });
    const tags = new Set<number>();
    for (let i = 0; i < 255; i++) tags.add(l.keep(0, { dev: 1, ino: i }, ['n'], 0));
    expect(tags.size).toBe(255);
    expect([...tags].every((t) => t >= 1 && t <= 255)).toBe(true);
    l.channelReset(0);
    expect(l.count).toBe(0);
    expect(l.keep(0, A, ['n'], 0)).toBe(1);
  });
});
