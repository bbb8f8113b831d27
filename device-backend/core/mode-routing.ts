// Which requests a channel may send in which mode, and SET_MODE's rules. Pure.
import { MODE, STATUS } from '../layout/wire-layout.js';
import type { MessageService } from './message-service.js';

export type ModeDecision = { ok: true; mode: number } | { ok: false; status: number; reason: string };

const KNOWN_MODES: ReadonlySet<number> = new Set(Object.values(MODE));

/** SET_MODE: only from MODE.NONE (reset the channel to change mode), only to a mode this VM has. */
export function decideSetMode(current: number, requested: number, available: ReadonlySet<number>): ModeDecision {
  if (!KNOWN_MODES.has(requested) || requested === MODE.NONE) return { ok: false, status: STATUS.UNKNOWN_MODE.code, reason: `mode ${requested}` };
  if (current !== MODE.NONE) return { ok: false, status: STATUS.WRONG_MODE.code, reason: `channel already in mode ${current}` };
  if (!available.has(requested)) return { ok: false, status: STATUS.MODE_UNAVAILABLE.code, reason: `mode ${requested} has no service here` };
  return { ok: true, mode: requested };
}

export type RouteDecision = { ok: true; service: MessageService } | { ok: false; status: number; reason: string };

/** Routes a request by (channel mode, type): one type may mean different services in different modes. */
export class ModeRouter {
  private readonly byType = new Map<number, MessageService[]>();
  readonly availableModes: ReadonlySet<number>;

  constructor(services: readonly MessageService[]) {
    const modes = new Set<number>();
    const overlap = (a: MessageService, b: MessageService): boolean =>
      a.modes === 'any' || b.modes === 'any' || a.modes.some((m) => (b.modes as readonly number[]).includes(m));
    for (const s of services) {
      if (s.modes !== 'any') for (const m of s.modes) modes.add(m);
      for (const t of s.types) {
        const list = this.byType.get(t) ?? [];
        const taken = list.find((other) => overlap(other, s));
        if (taken) throw new Error(`message type ${t} is claimed by both ${taken.name} and ${s.name} in the same mode`);
        list.push(s);
        this.byType.set(t, list);
      }
    }
    this.availableModes = modes;
  }

  route(channelMode: number, type: number): RouteDecision {
    const candidates = this.byType.get(type);
    if (!candidates) return { ok: false, status: STATUS.UNKNOWN_TYPE.code, reason: `no service for type ${type}` };
    const service = candidates.find((s) => s.modes === 'any' || (s.modes as readonly number[]).includes(channelMode));
    if (!service) {
      const modes = candidates.flatMap((s) => (s.modes === 'any' ? [] : s.modes));
      return { ok: false, status: STATUS.WRONG_MODE.code, reason: `type ${type} needs mode ${modes.join(' or ')}, channel is in mode ${channelMode}` };
    }
    return { ok: true, service };
  }
}
