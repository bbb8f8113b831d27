// Directory snapshots behind FILE_LIST cookies, so that paging through a directory reads and sorts it once
// and each page costs only its own entries. Pure: the caller passes the names, the directory's identity and
// the clock.
//
// A cookie is opaque to the guest: bits 31..24 are a tag naming one snapshot of this channel (1..255),
// bits 23..0 the index of the next entry in it (names sorted by code unit). Cookie 0 starts a listing and
// takes a new snapshot; next_cookie 0 ends it and drops the snapshot. A cookie whose snapshot is gone
// (idle too long, evicted, the channel was reset, the daemon restarted) or that names another directory
// than the path now resolves to re-reads the directory and carries on at the same index under the same tag,
// so next_cookie still grows. Entries created during a listing are not in it; entries removed during it are
// skipped when their page is built; none is listed twice.

export const LISTING_LIMITS = {
  /** Bits of the cookie that index the snapshot; a directory holds far fewer entries (readdirFd caps 100000). */
  INDEX_BITS: 24,
  MAX_TAG: 255,
  /** Snapshots kept per channel (a guest process lists one directory at a time; two allow a nested walk). */
  MAX_PER_CHANNEL: 2,
  /** Names held in snapshots per VM, all channels together (memory bound). */
  MAX_NAMES_HELD: 200_000,
  /** A snapshot not paged for this long is dropped. */
  IDLE_MS: 30_000,
} as const;

export type ListingLimits = { [K in keyof typeof LISTING_LIMITS]: number };

/** The directory a snapshot was taken of (st_dev, st_ino of the fd the listing opened). */
export interface DirKey {
  dev: number;
  ino: number;
}

export interface ListCookie {
  /** 0: no snapshot named (a new listing, or a bare index). */
  tag: number;
  index: number;
}

const INDEX_MASK = (1 << LISTING_LIMITS.INDEX_BITS) - 1;

export function decodeCookie(cookie: number): ListCookie {
  return { tag: cookie >>> LISTING_LIMITS.INDEX_BITS, index: cookie & INDEX_MASK };
}

/** tag 1..MAX_TAG, index below 2^INDEX_BITS. */
export function encodeCookie(tag: number, index: number): number {
  if (!Number.isInteger(tag) || tag < 1 || tag > LISTING_LIMITS.MAX_TAG) throw new RangeError(`listing tag ${tag} (1..${LISTING_LIMITS.MAX_TAG})`);
  if (!Number.isInteger(index) || index < 0 || index > INDEX_MASK) throw new RangeError(`listing index ${index} (0..${INDEX_MASK})`);
  return ((tag << LISTING_LIMITS.INDEX_BITS) | index) >>> 0;
}

interface Snapshot {
  channel: number;
  tag: number;
  key: DirKey;
  names: readonly string[];
  lastUsedMs: number;
}

export class DirListings {
  private readonly snapshots: Snapshot[] = [];
  private readonly nextTag = new Map<number, number>();

  constructor(private readonly limits: ListingLimits = LISTING_LIMITS) {}

  /** The names of the channel's snapshot `tag`, if it is alive and of directory `key`. */
  find(channel: number, tag: number, key: DirKey, nowMs: number): readonly string[] | undefined {
    this.expire(nowMs);
    const s = this.snapshots.find((x) => x.channel === channel && x.tag === tag);
    if (!s) return undefined;
    if (s.key.dev !== key.dev || s.key.ino !== key.ino) {
      this.drop(channel, tag);
      return undefined;
    }
    s.lastUsedMs = nowMs;
    return s.names;
  }

  /**
   * Keeps a snapshot of `names` and returns its tag: `tag` if given (replacing that snapshot), else a new
   * one. Evicts the least recently used beyond the limits; a snapshot larger than all of them is not kept.
   */
  keep(channel: number, key: DirKey, names: readonly string[], nowMs: number, tag?: number): number {
    this.expire(nowMs);
    const t = tag ?? this.freshTag(channel);
    this.drop(channel, t);
    if (names.length > this.limits.MAX_NAMES_HELD) return t;
    this.snapshots.push({ channel, tag: t, key, names, lastUsedMs: nowMs });
    const lru = (a: Snapshot, b: Snapshot): number => a.lastUsedMs - b.lastUsedMs;
    const mine = this.snapshots.filter((s) => s.channel === channel).sort(lru);
    for (const s of mine.slice(0, Math.max(0, mine.length - this.limits.MAX_PER_CHANNEL))) this.drop(s.channel, s.tag);
    const others = this.snapshots.filter((s) => !(s.channel === channel && s.tag === t)).sort(lru);
    while (this.namesHeld > this.limits.MAX_NAMES_HELD && others.length > 0) {
      const s = others.shift()!;
      this.drop(s.channel, s.tag);
    }
    return t;
  }

  drop(channel: number, tag: number): void {
    const i = this.snapshots.findIndex((s) => s.channel === channel && s.tag === tag);
    if (i >= 0) this.snapshots.splice(i, 1);
  }

  channelReset(channel: number): void {
    for (let i = this.snapshots.length - 1; i >= 0; i--) if (this.snapshots[i]!.channel === channel) this.snapshots.splice(i, 1);
    this.nextTag.delete(channel);
  }

  clear(): void {
    this.snapshots.length = 0;
    this.nextTag.clear();
  }

  get namesHeld(): number {
    return this.snapshots.reduce((n, s) => n + s.names.length, 0);
  }

  get count(): number {
    return this.snapshots.length;
  }

  private expire(nowMs: number): void {
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      if (nowMs - this.snapshots[i]!.lastUsedMs > this.limits.IDLE_MS) this.snapshots.splice(i, 1);
    }
  }

  /** The channel's next tag, 1..MAX_TAG cycling, skipping the ones its snapshots hold. */
  private freshTag(channel: number): number {
    let t = this.nextTag.get(channel) ?? 1;
    for (let tries = 0; tries < this.limits.MAX_TAG; tries++) {
      if (!this.snapshots.some((s) => s.channel === channel && s.tag === t)) break;
      t = (t % this.limits.MAX_TAG) + 1;
    }
    this.nextTag.set(channel, (t % this.limits.MAX_TAG) + 1);
    return t;
  }
}
