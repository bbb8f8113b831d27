// The cluster's names as one daemon sees them, from the JetStream key-value bucket it watches: `n.<name>`
// holds the claim of a chat name (host, VM, group; a released or expired claim stays as a tombstone with the
// reason it went), `h.<host>` is a host's lease, put again at every heartbeat. nats-server 2.9 has no per-key
// TTL, so liveness is judged here: a host is live while its lease was seen within leaseMs (by this daemon's
// clock, when the update arrived), and the names of a host that stopped renewing are expired by whoever
// notices first, with a compare-and-set on the revision they saw. Pure: entries in, decisions out.
import { z } from 'zod';
import { CHAT_NAME_PATTERN, CHAT_PRESENCE_REASON } from '../../../layout/wire-layout.js';

export const claimSchema = z
  .object({
    host: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/),
    vm: z.string().min(1).max(64).nullable(),
    group: z.string().min(1).max(64).optional(),
    /** A tombstone: the name went, for this CHAT_PRESENCE_REASON. */
    gone: z.number().int().min(1).max(255).optional(),
  })
  .strict();
export type NameClaim = z.infer<typeof claimSchema>;

export interface HeldClaim {
  readonly claim: NameClaim;
  readonly revision: number;
}

export const KEYS = {
  name: (name: string) => `n.${name}`,
  host: (host: string) => `h.${host}`,
} as const;

export type ParsedKey = { kind: 'name'; name: string } | { kind: 'host'; host: string };

export function parseKey(key: string): ParsedKey | undefined {
  if (key.startsWith('n.') && CHAT_NAME_PATTERN.test(key.slice(2))) return { kind: 'name', name: key.slice(2) };
  if (key.startsWith('h.') && /^[a-z0-9][a-z0-9_-]{0,31}$/.test(key.slice(2))) return { kind: 'host', host: key.slice(2) };
  return undefined;
}

export function encodeClaim(c: NameClaim): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(c));
}

export function decodeClaim(bytes: Uint8Array): NameClaim | undefined {
  try {
    const r = claimSchema.safeParse(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** What to write to claim a name: create it, replace a tombstone, our own or an expired claim (CAS), or refuse. */
export type ClaimStep = { kind: 'create' } | { kind: 'update'; revision: number } | { kind: 'taken'; holder: NameClaim };

export function claimStep(existing: HeldClaim | undefined, me: string, live: (host: string) => boolean): ClaimStep {
  if (!existing) return { kind: 'create' };
  const c = existing.claim;
  if (c.gone !== undefined || c.host === me || !live(c.host)) return { kind: 'update', revision: existing.revision };
  return { kind: 'taken', holder: c };
}

/** A change to a name of another host, for watchers; or news about one of this host's own claims. */
export type NameChange =
  | { kind: 'join'; name: string; claim: NameClaim }
  | { kind: 'leave'; name: string; claim: NameClaim; reason: number }
  /** Our claim was expired (tombstoned) or taken over by another host while we were not heard from. */
  | { kind: 'own-lost'; name: string; now: NameClaim };

const liveClaim = (h: HeldClaim | undefined): NameClaim | undefined => (h && h.claim.gone === undefined ? h.claim : undefined);

export class ClusterNames {
  private readonly names = new Map<string, HeldClaim>();
  private readonly hostSeen = new Map<string, number>();

  constructor(
    readonly me: string,
    private readonly leaseMs: number,
  ) {}

  /** A put of the bucket (value undefined: a delete or purge). seenAtMs: when it was seen (or written, for the history replayed at a watch's start). */
  apply(key: string, value: Uint8Array | undefined, revision: number, seenAtMs: number): NameChange[] {
    const k = parseKey(key);
    if (!k) return [];
    if (k.kind === 'host') {
      if (value === undefined) this.hostSeen.delete(k.host);
      else this.hostSeen.set(k.host, Math.max(this.hostSeen.get(k.host) ?? 0, seenAtMs));
      return [];
    }
    const before = this.names.get(k.name);
    if (before && before.revision >= revision) return [];
    const claim = value === undefined ? undefined : decodeClaim(value);
    if (claim) this.names.set(k.name, { claim, revision });
    else this.names.delete(k.name);
    const was = liveClaim(before);
    const now = claim && claim.gone === undefined ? claim : undefined;
    const changes: NameChange[] = [];
    if (was && was.host === this.me && (!now || now.host !== this.me)) changes.push({ kind: 'own-lost', name: k.name, now: claim ?? { ...was, gone: CHAT_PRESENCE_REASON.UNREGISTERED } });
    const sameHolder = was && now && was.host === now.host && was.vm === now.vm;
    if (was && was.host !== this.me && !sameHolder) changes.push({ kind: 'leave', name: k.name, claim: was, reason: claim?.gone ?? CHAT_PRESENCE_REASON.UNREGISTERED });
    if (now && now.host !== this.me && !sameHolder) changes.push({ kind: 'join', name: k.name, claim: now });
    return changes;
  }

  /** This host is always live; another while its lease was renewed within leaseMs. */
  live(host: string, nowMs: number): boolean {
    if (host === this.me) return true;
    const seen = this.hostSeen.get(host);
    return seen !== undefined && nowMs - seen <= this.leaseMs;
  }

  /** When a lease renewal of host was last seen (this host's own included). */
  seenAt(host: string): number | undefined {
    return this.hostSeen.get(host);
  }

  get(name: string): HeldClaim | undefined {
    return this.names.get(name);
  }

  /** Live claims of other hosts (whatever their host's lease). */
  remote(): { name: string; claim: NameClaim }[] {
    const out: { name: string; claim: NameClaim }[] = [];
    for (const [name, h] of this.names) if (h.claim.gone === undefined && h.claim.host !== this.me) out.push({ name, claim: h.claim });
    return out;
  }

  /** Names this host has a live claim on, as the bucket says. */
  own(): string[] {
    const out: string[] = [];
    for (const [name, h] of this.names) if (h.claim.gone === undefined && h.claim.host === this.me) out.push(name);
    return out;
  }

  /** Claims of hosts whose lease ran out: to expire with a compare-and-set on this revision. */
  expired(nowMs: number): { name: string; held: HeldClaim }[] {
    const out: { name: string; held: HeldClaim }[] = [];
    for (const [name, held] of this.names) if (held.claim.gone === undefined && !this.live(held.claim.host, nowMs)) out.push({ name, held });
    return out;
  }
}
