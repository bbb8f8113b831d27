// The noisy guest of the core fuzz: keeps to the ring protocol, sends anything; every request it sends must
// be answered while its channel is served, and none sent while the channel is NEEDS_RESET.
import { channelOffset } from '../layout/geometry.js';
import { CHANNEL, CHANNEL_STATE, FILE_INFO, MSG_RESPONSE_BIT, MSG_TYPE, STATUS } from '../layout/wire-layout.js';
import { decodeMessage, type Message } from '../protocol/message-codec.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { type SlotSpec, slotFromSpec } from './arbitraries.js';
import { FuzzDevice } from './fuzz-device.js';
import { type CtlField, NOISY, statusName, u32At } from './core-scenario.js';

export class NoisyGuest {
  private readonly fg: FakeGuest;
  /** type:id → what the answer must carry, in order of sending (answers can overtake each other). */
  private readonly expected = new Map<string, { status?: number; payload?: Uint8Array; forbidden?: boolean }[]>();
  /** Host-started requests on this channel the guest has not seen on its c2g ring yet. */
  private hostRequestsDue = 0;
  private readonly answersToSend: number[] = [];
  private ready = false;
  /** Host-started requests on this channel since the last reset, not yet settled. */
  readonly unsettled = new Set<Promise<unknown>>();
  private readonly token = 2000;
  /** The handle of the last FILE_OPEN this channel got answered OK. */
  lastHandle = 0;
  onAnswer: ((key: string) => void) | undefined;

  constructor(
    private readonly dev: FuzzDevice,
    private readonly fail: (msg: string) => void,
  ) {
    this.fg = new FakeGuest(dev.guestMem, dev.geometry, NOISY);
  }

  private field(f: CtlField): number {
    return this.dev.guestMem.loadU32(channelOffset(this.dev.geometry, NOISY) + CHANNEL.offsets[f]);
  }

  /** Served (READY) and not reset behind its back: then every promise of the protocol holds. */
  get accountable(): boolean {
    return this.ready && this.field('state') === CHANNEL_STATE.READY && this.field('owner') === this.token;
  }

  private ensure(): void {
    if (this.accountable) return;
    if (this.ready && this.field('state') === CHANNEL_STATE.NEEDS_RESET) return; // the driver would reset on its next call
    this.reset();
  }

  /** Claims and resets the channel, then (mode ≠ 0) programs a mode with a well-formed SET_MODE. */
  reset(mode = 0): void {
    this.fg.claim(this.token);
    this.dev.kick();
    this.fg.afterReset();
    this.expected.clear();
    this.hostRequestsDue = 0;
    this.answersToSend.length = 0;
    this.unsettled.clear();
    this.ready = this.field('state') === CHANNEL_STATE.READY;
    if (this.ready && mode !== 0) {
      const p = new Uint8Array(8);
      new DataView(p.buffer).setUint32(0, mode, true);
      this.send({ type: MSG_TYPE.SET_MODE, flags: 0, length: undefined, requestId: 77, status: 0, payload: p });
    }
  }

  send(spec: SlotSpec): void {
    this.ensure();
    this.flushAnswers();
    const space = this.fg.g2c.space();
    if (space.kind !== 'space' || space.free === 0) return;
    const slot = slotFromSpec(spec, this.dev.geometry.slotSizeBytes);
    if ((spec.type & MSG_RESPONSE_BIT) === 0) {
      const d = decodeMessage(slot);
      const want = !d.ok ? { status: d.status } : spec.type === MSG_TYPE.PING ? { status: STATUS.OK.code, payload: d.message.payload } : {};
      // The core serves a channel in NEEDS_RESET no more: this one must not be answered (until a reset drops it).
      const forbidden = this.field('state') === CHANNEL_STATE.NEEDS_RESET;
      const key = `${spec.type}:${spec.requestId >>> 0}`;
      this.expected.set(key, [...(this.expected.get(key) ?? []), forbidden ? { ...want, forbidden } : want]);
    }
    this.fg.sendRaw(slot);
    if (this.fg.coreWantsWakeup()) this.dev.kick();
  }

  private flushAnswers(): void {
    let sent = false;
    while (this.answersToSend.length > 0) {
      const space = this.fg.g2c.space();
      if (space.kind !== 'space' || space.free === 0) break;
      this.fg.send({ type: MSG_TYPE.AGENT_COPY | MSG_RESPONSE_BIT, requestId: this.answersToSend.shift()!, status: 0, payload: new Uint8Array() });
      sent = true;
    }
    if (sent && this.fg.coreWantsWakeup()) this.dev.kick();
  }

  drain(): void {
    if (!this.ready) return;
    let msgs: Message[];
    try {
      msgs = this.fg.receiveAll();
    } catch (err) {
      return this.fail(`noisy channel: malformed message from the core: ${(err as Error).message}`);
    }
    for (const m of msgs) {
      if ((m.type & MSG_RESPONSE_BIT) === 0) {
        if (m.type !== MSG_TYPE.AGENT_COPY || this.hostRequestsDue === 0) return this.fail(`noisy channel: request type ${m.type} id ${m.requestId} from the core that the host never started`);
        this.hostRequestsDue--;
        this.answersToSend.push(m.requestId);
        continue;
      }
      const key = `${m.type & ~MSG_RESPONSE_BIT}:${m.requestId}`;
      const list = this.expected.get(key);
      if (!list || list.length === 0) return this.fail(`noisy channel: answer type ${m.type} id ${m.requestId} to no request it sent`);
      const want = list.shift()!;
      if (m.type === (MSG_TYPE.FILE_OPEN | MSG_RESPONSE_BIT) && m.status === STATUS.OK.code && m.payload.byteLength >= 4) this.lastHandle = u32At(m, FILE_INFO.offsets.handle);
      this.onAnswer?.(`noisy ${(m.type & ~MSG_RESPONSE_BIT).toString(16)} ${statusName(m.status)}`);
      if (list.length === 0) this.expected.delete(key);
      if (want.forbidden) this.fail(`noisy channel: answer id ${m.requestId} to a request sent while the channel was NEEDS_RESET`);
      if (want.status !== undefined && m.status !== want.status) this.fail(`noisy channel: answer id ${m.requestId} has ${statusName(m.status)}, expected ${statusName(want.status)}`);
      if (want.payload && Buffer.compare(Buffer.from(want.payload), Buffer.from(m.payload)) !== 0) this.fail(`noisy channel: PING answer id ${m.requestId} carries other bytes`);
    }
    this.flushAnswers();
  }

  noteHostRequest(p: Promise<Message>): void {
    if (!this.accountable) return;
    this.unsettled.add(p);
    this.hostRequestsDue++;
    // A request refused at once (BUSY) never reaches the ring; the count only bounds what may arrive.
    const settled = () => void this.unsettled.delete(p);
    void p.then(settled, settled);
  }

  waitingFor(): string[] {
    return [...this.expected.entries()].flatMap(([k, v]) => v.filter((w) => !w.forbidden).map(() => k));
  }
}
