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

export class ModeRouter {
  private readonly byType = new Map<number, MessageService>();
  readonly availableModes: ReadonlySet<number>;

  constructor(services: readonly MessageService[]) {
    const modes = new Set<number>();
    for (const s of services) {
      if (s.modes !== 'any') for (const m of s.modes) modes.add(m);
      for (const t of s.types) {
        const taken = this.byType.get(t);
        if (taken) throw new Error(`message type ${t} is claimed by both ${taken.name} and ${s.name}`);
        this.byType.set(t, s);
      }
    }
    this.availableModes = modes;
  }

  route(channelMode: number, type: number): RouteDecision {
    const service = this.byType.get(type);
    if (!service) return { ok: false, status: STATUS.UNKNOWN_TYPE.code, reason: `no service for type ${type}` };
    if (service.modes !== 'any' && !service.modes.includes(channelMode)) {
      return { ok: false, status: STATUS.WRONG_MODE.code, reason: `type ${type} needs mode ${service.modes.join(' or ')}, channel is in mode ${channelMode}` };
    }
    return { ok: true, service };
  }
}
