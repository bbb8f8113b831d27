// The whole core under attack: device A (a hostile VM) has a well-behaved channel, a noisy channel that
// keeps to the ring protocol but sends messages with arbitrary fields, and hostile channels that write
// anything anywhere outside those two; device B (another VM, its own region, core and file root) only
// has a well-behaved channel. A run applies a sequence of operations (plain data, so fast-check can shrink
// and print it) and checks after each one: nothing escaped the core, every access the core made stayed in
// its part of the region (AccessCheckedMemory), queues are bounded. At the end every request the protocol
// promises an answer has one, the well-behaved channels of both devices still answer correctly, and
// closing the devices leaves no temp file, no fd and nothing outside the roots.
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { silentLogger } from '../core/core-logger.js';
import { CoreRequestError, DeviceCore, type DeviceCoreOptions } from '../core/device-core.js';
import type { MessageService } from '../core/message-service.js';
import { pingService } from '../core/ping-service.js';
import { channelOffset, computeGeometry, dataSliceOffset, type Geometry, type GeometryOptions, ringOffset, slotsOffset } from '../layout/geometry.js';
import {
  CHANNEL, CHANNEL_STATE, DIRENT, FILE_CLOSE_FLAG, FILE_HASH_RESP_BYTES, FILE_INFO, FILE_IO_RESP, FILE_LIST_RESP, FILE_OPEN_FLAG, FILE_TYPE,
  HEADER, LIMITS, MODE, MSG_HEADER, MSG_RESPONSE_BIT, MSG_TYPE, RING, STATUS,
} from '../layout/wire-layout.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { loadNative, type VmgmtNative } from '../native/index.js';
import { decodeMessage, type Message } from '../protocol/message-codec.js';
import { DEFAULT_FILE_LIMITS } from '../services/file/file-root-config.js';
import { FileService } from '../services/file/file-service.js';
import { type HostTransfer, HostTransfers } from '../services/file/host-transfers.js';
import { TEMP_PREFIX } from '../services/file/file-path.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { fileReq } from '../testing/file-requests.js';
import { AccessCheckedMemory } from './access-checked-memory.js';
import { edgeU32, hostilePath, type SlotSpec, slotFromSpec, slotSpec } from './arbitraries.js';

// ---------------------------------------------------------------------------------------------------
// Geometries and roles

/** Small regions, so random writes hit rings and slots often; a 2-slot ring, and 4 KiB slots. */
export const FUZZ_GEOMETRIES: readonly GeometryOptions[] = [
  { regionSizeBytes: 256 * 1024, channelCount: 4, ringSlots: 8, slotSizeBytes: 256, vectors: 2 },
  { regionSizeBytes: 128 * 1024, channelCount: 3, ringSlots: 2, slotSizeBytes: 64, vectors: 2 },
  { regionSizeBytes: 512 * 1024, channelCount: 5, ringSlots: 32, slotSizeBytes: 128, vectors: 2 },
  { regionSizeBytes: 2 * 1024 * 1024, channelCount: 3, ringSlots: 16, slotSizeBytes: 4096, vectors: 1 },
  { regionSizeBytes: 1024 * 1024, channelCount: 3, ringSlots: 1024, slotSizeBytes: 64, vectors: 2 },
];
const DEVICE_B_GEOMETRY: GeometryOptions = { regionSizeBytes: 256 * 1024, channelCount: 2, ringSlots: 8, slotSizeBytes: 256, vectors: 2 };

export function geometryOf(opts: GeometryOptions): Geometry {
  const r = computeGeometry(opts);
  if (!r.ok) throw new Error(r.reason);
  return r.geometry;
}

const GOOD = 0;
const NOISY = 1;
const PATH_AT = 0;
const BUF_AT = 4096;
const GOOD_DIR = 'good';
const GOOD_NAMES = ['f0', 'f1', 'f2'] as const;
const STATUS_NAME = new Map<number, string>(Object.entries(STATUS).map(([k, v]) => [v.code, k]));
const statusName = (s: number): string => STATUS_NAME.get(s) ?? `status ${s}`;

// ---------------------------------------------------------------------------------------------------
// Operations

export type GoodScript =
  | { s: 'put'; name: string; data: Uint8Array; commit: boolean }
  | { s: 'get'; name: string }
  | { s: 'hash'; name: string }
  | { s: 'stat'; name: string }
  | { s: 'list' }
  | { s: 'remove'; name: string };

type Dir = 'g2c' | 'c2g';
type CtlField = keyof typeof CHANNEL.offsets;

export type Op =
  | { k: 'ping'; dev: 0 | 1; payload: Uint8Array }
  | { k: 'file'; dev: 0 | 1; script: GoodScript }
  | { k: 'good'; dev: 0 | 1 }
  | { k: 'noisy'; spec: SlotSpec }
  | { k: 'noisyDrain' }
  | { k: 'noisyReset'; mode: number }
  | { k: 'raw'; at: number; bytes: Uint8Array }
  | { k: 'hSend'; ch: number; spec: SlotSpec }
  | { k: 'hIndex'; ch: number; dir: Dir; field: 'prod' | 'cons' | 'need_wakeup'; how: 'rollback' | 'jump' | 'wrap' | 'set'; n: number }
  | { k: 'hCtl'; ch: number; field: CtlField; value: number }
  | { k: 'hReset'; ch: number }
  | { k: 'header'; field: string; value: number }
  | { k: 'slice'; ch: number; at: number; bytes: Uint8Array }
  | { k: 'hostRequest'; ch: number; payload: Uint8Array }
  | { k: 'doorbell'; dev: 0 | 1 }
  | { k: 'settle' }
  | { k: 'restart' }
  | { k: 'transfer'; dir: 'to' | 'from'; flags: number; sizeBytes: number }
  | { k: 'handleIo'; type: number; length: number; fileOffset: number; bufOffset: number; closeFlags: number };

/** Offsets worth aiming at in device A: header fields, hostile channels' fields, slots, slice edges, gaps. */
function interestingOffsets(g: Geometry): number[] {
  const out: number[] = HEADER.fields.map((f) => f.offset);
  out.push(HEADER.sizeBytes, g.channelsOffset - 4);
  for (let ch = 2; ch < g.channelCount; ch++) {
    const base = channelOffset(g, ch);
    out.push(...CHANNEL.fields.map((f) => base + f.offset));
    for (const dir of ['g2c', 'c2g'] as const) {
      out.push(ringOffset(g, ch, dir) + RING.offsets.prod, ringOffset(g, ch, dir) + RING.offsets.cons, ringOffset(g, ch, dir) + RING.offsets.need_wakeup);
      out.push(slotsOffset(g, ch, dir), slotsOffset(g, ch, dir) + g.slotSizeBytes - 8);
    }
    out.push(base + g.channelStrideBytes - 8, dataSliceOffset(g, ch), dataSliceOffset(g, ch) + g.dataSliceBytes - 8);
  }
  out.push(g.dataOffset + g.channelCount * g.dataSliceBytes, g.regionSizeBytes - 16);
  return out.filter((o) => o >= 0 && o < g.regionSizeBytes);
}

export function opArb(g: Geometry): fc.Arbitrary<Op> {
  const hostile = fc.integer({ min: 2, max: g.channelCount - 1 });
  const anyMsgChannel = fc.integer({ min: NOISY, max: g.channelCount - 1 });
  const spec = slotSpec(g.slotSizeBytes, g.dataSliceBytes);
  const dev = fc.constantFrom<0 | 1>(0, 0, 0, 1);
  const name = fc.constantFrom(...GOOD_NAMES);
  const data = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 10_000 }));
  const script: fc.Arbitrary<GoodScript> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ s: fc.constant('put' as const), name, data, commit: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ s: fc.constant('get' as const), name }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('hash' as const), name }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('stat' as const), name }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('list' as const) }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('remove' as const), name }) },
  );
  const maxPing = g.slotSizeBytes - MSG_HEADER.sizeBytes;
  const offsets = interestingOffsets(g);
  const rawAt = fc.oneof(
    fc.tuple(fc.constantFrom(...offsets), fc.integer({ min: -8, max: 8 })).map(([o, d]) => Math.max(0, Math.min(g.regionSizeBytes - 1, o + d))),
    fc.integer({ min: 0, max: g.regionSizeBytes - 1 }),
  );
  const sliceAt = fc.oneof(fc.constantFrom(0, 1, 16, 4096, g.dataSliceBytes - 1, g.dataSliceBytes - 16), fc.integer({ min: 0, max: g.dataSliceBytes - 1 }));
  const headerFields = HEADER.fields.filter((f) => !f.name.startsWith('_')).map((f) => f.name);
  const ctlFields = CHANNEL.fields.filter((f) => !f.name.startsWith('_')).map((f) => f.name as CtlField);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ k: fc.constant('ping' as const), dev, payload: fc.uint8Array({ maxLength: maxPing }) }) },
    { weight: 5, arbitrary: fc.record({ k: fc.constant('file' as const), dev, script }) },
    { weight: 10, arbitrary: fc.record({ k: fc.constant('good' as const), dev }) },
    { weight: 8, arbitrary: fc.record({ k: fc.constant('noisy' as const), spec }) },
    { weight: 3, arbitrary: fc.constant({ k: 'noisyDrain' as const }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('noisyReset' as const), mode: fc.constantFrom(0, MODE.FILE, MODE.FILE, MODE.AGENT) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('raw' as const), at: rawAt, bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }) },
    { weight: 8, arbitrary: fc.record({ k: fc.constant('hSend' as const), ch: hostile, spec }) },
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('hIndex' as const), ch: hostile, dir: fc.constantFrom<Dir>('g2c', 'c2g'), field: fc.constantFrom('prod' as const, 'cons' as const, 'need_wakeup' as const),
        how: fc.constantFrom('rollback' as const, 'jump' as const, 'wrap' as const, 'set' as const), n: edgeU32([g.ringSlots]),
      }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('hCtl' as const), ch: hostile, field: fc.constantFrom(...ctlFields), value: edgeU32() }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('hReset' as const), ch: hostile }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('header' as const), field: fc.constantFrom(...headerFields), value: edgeU32() }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('slice' as const), ch: anyMsgChannel, at: sliceAt, bytes: fc.oneof(hostilePath, fc.uint8Array({ minLength: 1, maxLength: 32 })) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('hostRequest' as const), ch: anyMsgChannel, payload: fc.uint8Array({ maxLength: Math.min(maxPing, 48) }) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('doorbell' as const), dev }) },
    { weight: 1, arbitrary: fc.constant({ k: 'settle' as const }) },
    { weight: 1, arbitrary: fc.constant({ k: 'restart' as const }) },
    {
      weight: 2,
      arbitrary: fc.record({ k: fc.constant('transfer' as const), dir: fc.constantFrom('to' as const, 'from' as const), flags: fc.constantFrom(1, 1, 2, 2, 3, 0), sizeBytes: fc.oneof(fc.integer({ min: 0, max: 1 << 16 }), fc.constant(2 ** 30)) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('handleIo' as const),
        type: fc.constantFrom(MSG_TYPE.FILE_READ, MSG_TYPE.FILE_WRITE, MSG_TYPE.FILE_READ, MSG_TYPE.FILE_WRITE, MSG_TYPE.FILE_HASH, MSG_TYPE.FILE_CLOSE),
        length: fc.oneof(fc.integer({ min: 0, max: 8192 }), edgeU32([g.dataSliceBytes])),
        fileOffset: fc.oneof(fc.integer({ min: 0, max: 1 << 16 }), fc.constantFrom(2 ** 30 - 1, 2 ** 32, 2 ** 53 - 1)),
        bufOffset: fc.oneof(fc.integer({ min: 0, max: 8192 }), edgeU32([g.dataSliceBytes])),
        closeFlags: fc.constantFrom(0, 1, 1, 2),
      }),
    },
  );
}

/** The core's own limits for device A: the defaults, a tiny batch (the "more work" path), one error or many. */
export interface Tuning {
  batchLimit: number;
  maxErrorsBeforeReset: number;
}

export interface Scenario {
  geometry: GeometryOptions;
  tuning: Tuning;
  ops: Op[];
}

const tuningArb: fc.Arbitrary<Tuning> = fc.record({
  batchLimit: fc.constantFrom(256, 256, 3, 1),
  maxErrorsBeforeReset: fc.constantFrom(16, 16, 1, 1000),
});

export function scenarioArb(maxOps: number): fc.Arbitrary<Scenario> {
  return fc.constantFrom(...FUZZ_GEOMETRIES).chain((geometry) => fc.record({ geometry: fc.constant(geometry), tuning: tuningArb, ops: fc.array(opArb(geometryOf(geometry)), { minLength: 1, maxLength: maxOps, size: 'max' }) }));
}

// ---------------------------------------------------------------------------------------------------
// A device: region, checked memory for the core, plain memory for the guests, the shell's scheduling

interface CoreInternals {
  channels: { index: number; inFlight: number; pending: unknown[]; outstanding: Map<number, unknown> }[];
}

class Device {
  readonly buffer: ArrayBuffer;
  readonly coreMem: AccessCheckedMemory;
  readonly guestMem: GuestMemory;
  core!: DeviceCore;
  files!: FileService;
  /** The shell owes the core a process() call (more work, or an answer landed). */
  scheduled = false;
  asyncInFlight = 0;
  restarts = 0;
  private readonly baseOpts: Omit<DeviceCoreOptions, 'services' | 'onWorkPending'>;

  constructor(
    readonly name: string,
    readonly geometry: Geometry,
    readonly root: string,
    private readonly native: VmgmtNative,
    private readonly fail: (msg: string) => void,
    private readonly transfers?: HostTransfers,
    tuning?: Tuning,
  ) {
    this.buffer = new ArrayBuffer(geometry.regionSizeBytes);
    this.coreMem = new AccessCheckedMemory(this.buffer, geometry);
    this.guestMem = new GuestMemory(this.buffer);
    this.baseOpts = {
      mem: this.coreMem,
      geometry,
      notifyGuest: (v) => {
        if (!Number.isInteger(v) || v < 0 || v >= geometry.vectors + 1 || v > 1) this.fail(`${name}: notifyGuest(${v}) is not a vector`);
      },
      log: silentLogger,
      ...(tuning ?? {}),
    };
    this.coreMem.phase = 'init';
    const { opts, bind } = this.coreOpts(this.newFiles());
    this.core = DeviceCore.initialize(opts);
    bind(this.core);
    this.coreMem.phase = 'serve';
  }

  private newFiles(): FileService {
    this.files = new FileService({ native: this.native, config: { ...DEFAULT_FILE_LIMITS, root: this.root, readOnly: false }, ...(this.transfers ? { transfers: this.transfers } : {}), log: silentLogger });
    return this.files;
  }

  /** Options for a core over this device, with every service observed; bind() the core once it exists. */
  private coreOpts(files: FileService): { opts: DeviceCoreOptions; bind: (c: DeviceCore) => void } {
    const mem = this.coreMem;
    const g = this.geometry;
    const observe = (s: MessageService): MessageService => ({
      name: s.name,
      modes: s.modes,
      types: s.types,
      handle: (request, ctx) => {
        if (ctx.slice.baseOffset !== dataSliceOffset(g, ctx.channel) || ctx.slice.sizeBytes !== g.dataSliceBytes) {
          this.fail(`${this.name}: channel ${ctx.channel}'s request came with the slice at ${ctx.slice.baseOffset}+${ctx.slice.sizeBytes}`);
        }
        mem.serviceChannel = ctx.channel;
        try {
          const answer = s.handle(request, ctx);
          if (answer instanceof Promise) {
            this.asyncInFlight++;
            void answer.finally(() => this.asyncInFlight--).catch(() => {});
          }
          return answer;
        } finally {
          mem.serviceChannel = undefined;
        }
      },
      ...(s.channelReset ? { channelReset: (ch: number) => s.channelReset!(ch) } : {}),
      ...(s.close ? { close: () => s.close!() } : {}),
    });
    let mine: DeviceCore | undefined;
    const opts: DeviceCoreOptions = {
      ...this.baseOpts,
      services: [pingService, files].map(observe),
      // A restarted device's old core may still finish work: only the current core's counts.
      onWorkPending: () => {
        if (mine === undefined || mine === this.core) this.scheduled = true;
      },
    };
    return { opts, bind: (c) => (mine = c) };
  }

  private guard<T>(what: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.fail(`${this.name}: ${what} threw: ${(err as Error).stack ?? String(err)}`);
      return undefined;
    }
  }

  /** A doorbell: process() now, and again while it reports more (the shell's setImmediate loop, bounded). */
  kick(): void {
    for (let i = 0; i < 4; i++) {
      this.coreMem.beginPass();
      const r = this.guard('process()', () => this.core.process());
      if (!r?.more) {
        return;
      }
    }
    this.scheduled = true;
  }

  /** Runs what the shell has scheduled. */
  runShell(passes = 16): void {
    for (let i = 0; i < passes && this.scheduled; i++) {
      this.scheduled = false;
      this.coreMem.beginPass();
      const r = this.guard('process()', () => this.core.process());
      if (r?.more) this.scheduled = true;
    }
  }

  request(ch: number, payload: Uint8Array): Promise<Message> | undefined {
    this.coreMem.beginPass();
    return this.guard('request()', () => this.core.request(ch, MSG_TYPE.AGENT_COPY, payload));
  }

  /** A daemon restart: a new core and file service re-attach to the live region; the old ones are closed. */
  restart(): boolean {
    const old = { core: this.core, files: this.files };
    const files = this.newFiles();
    const { opts, bind } = this.coreOpts(files);
    this.coreMem.phase = 'reattach';
    this.coreMem.beginPass();
    let core: DeviceCore;
    try {
      core = DeviceCore.reattach(opts);
    } catch (err) {
      this.coreMem.phase = 'serve';
      // The documented refusal (the guest scribbled over the geometry); the old core keeps serving.
      if (!/^cannot re-attach to the region: header field/.test((err as Error).message)) this.fail(`${this.name}: reattach threw: ${(err as Error).stack}`);
      files.close();
      this.files = old.files;
      return false;
    }
    this.coreMem.phase = 'serve';
    bind(core);
    this.core = core;
    this.guard('close() of the old core', () => old.core.close());
    this.restarts++;
    this.scheduled = true;
    return true;
  }

  internals(): CoreInternals {
    return this.core as unknown as CoreInternals;
  }

  close(): void {
    this.guard('close()', () => this.core.close());
  }
}

// ---------------------------------------------------------------------------------------------------
// The well-behaved guest: pings and file scripts, every answer checked

type Step = { type: number; payload: Uint8Array };
type ScriptGen = Generator<Step, void, Message>;

const u32At = (m: Message, off: number): number => new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength).getUint32(off, true);

class GoodGuest {
  private readonly fg: FakeGuest;
  private readonly outstanding = new Map<number, { type: number; onAnswer: (m: Message) => void }>();
  private nextId = 1;
  private readonly pings: Uint8Array[] = [];
  private readonly scripts: GoodScript[] = [];
  private active: { gen: ScriptGen; script: GoodScript; waiting: boolean } | undefined;
  private ready = false;
  private resetsAtClaim = -1;
  /** name → content, or 'unknown' after a script was cut off by a reset (did the commit happen?). */
  readonly model = new Map<string, Uint8Array | 'unknown'>();
  private readonly token: number;
  private readonly limit: number;
  answered = 0;
  onAnswer: ((key: string) => void) | undefined;
  /** Requests published since the last look at need_wakeup. */
  private unrung = false;

  constructor(
    private readonly dev: Device,
    private readonly strict: boolean,
    private readonly fail: (msg: string) => void,
  ) {
    this.fg = new FakeGuest(dev.guestMem, dev.geometry, GOOD);
    this.token = 1000 + GOOD;
    // Like the C driver: no more in flight than the core allows and the response ring holds.
    this.limit = Math.min(LIMITS.MAX_IN_FLIGHT_PER_CHANNEL, dev.geometry.ringSlots);
  }

  private resets(): number {
    return this.dev.core.counters.deviceResets + this.dev.restarts * 1_000_000;
  }

  queuePing(payload: Uint8Array): void {
    if (this.pings.length < 64) this.pings.push(payload);
  }

  queueScript(s: GoodScript): void {
    if (this.scripts.length < 8) this.scripts.push(s);
  }

  get idle(): boolean {
    return this.outstanding.size === 0 && this.pings.length === 0 && this.scripts.length === 0 && this.active === undefined;
  }

  describeWaiting(): string {
    return `${this.outstanding.size} answers outstanding (ids ${[...this.outstanding.keys()].join(',')}), ${this.pings.length} pings and ${this.scripts.length} scripts queued, script ${JSON.stringify(this.active?.script ?? null, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v))}`;
  }

  private lost(why: string): void {
    if (this.resets() === this.resetsAtClaim) {
      this.fail(`${this.dev.name}: the well-behaved channel lost its session (${why}) without a device reset or restart`);
    }
    this.outstanding.clear();
    if (this.active) {
      const s = this.active.script;
      if (s.s === 'put' || s.s === 'remove') this.model.set(s.name, 'unknown');
      this.active = undefined;
    }
    this.ready = false;
  }

  /** One turn of the driver loop: check the session, take answers, send what is due. */
  step(): void {
    const mem = this.dev.guestMem;
    const base = channelOffset(this.dev.geometry, GOOD);
    if (this.ready) {
      const state = mem.loadU32(base + CHANNEL.offsets.state);
      const owner = mem.loadU32(base + CHANNEL.offsets.owner);
      if (state !== CHANNEL_STATE.READY || owner !== this.token) this.lost(`state ${state}, owner ${owner}`);
    }
    if (!this.ready) {
      this.resetsAtClaim = this.resets();
      this.fg.claim(this.token);
      this.dev.kick();
      this.fg.afterReset();
      const state = mem.loadU32(base + CHANNEL.offsets.state);
      if (state !== CHANNEL_STATE.READY || mem.loadU32(base + CHANNEL.offsets.reset_done) !== mem.loadU32(base + CHANNEL.offsets.reset_request)) {
        if (this.resets() === this.resetsAtClaim) this.fail(`${this.dev.name}: claiming the well-behaved channel left it in state ${state}`);
        return; // a device reset swallowed the claim: try again next turn
      }
      this.ready = true;
      const p = new Uint8Array(8);
      new DataView(p.buffer).setUint32(0, MODE.FILE, true);
      this.send({ type: MSG_TYPE.SET_MODE, payload: p }, (m) => this.expectStatus(m, 'SET_MODE', [STATUS.OK.code]));
    }
    this.receive();
    while (this.outstanding.size < this.limit) {
      const space = this.fg.g2c.space();
      if (space.kind !== 'space' || space.free === 0) break;
      if (this.active === undefined && this.scripts.length > 0) this.startScript(this.scripts.shift()!);
      if (this.active && !this.active.waiting) {
        this.advance(undefined);
        continue;
      }
      const payload = this.pings.shift();
      if (!payload) break;
      this.send({ type: MSG_TYPE.PING, payload }, (m) => {
        this.expectStatus(m, 'PING', [STATUS.OK.code]);
        if (m.payload.byteLength !== payload.byteLength || !m.payload.every((b, i) => b === payload[i])) this.fail(`${this.dev.name}: PING answer carries other bytes`);
      });
    }
    // After a batch: ring only if the core said it may sleep (notification suppression).
    if (this.unrung && this.fg.coreWantsWakeup()) this.dev.kick();
    this.unrung = false;
  }

  private send(step: Step, onAnswer: (m: Message) => void): void {
    const requestId = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    this.outstanding.set(requestId, { type: step.type, onAnswer });
    this.fg.send({ type: step.type, requestId, status: 0, payload: step.payload });
    this.unrung = true;
  }

  private receive(): void {
    let answers: Message[];
    try {
      answers = this.fg.receiveAll();
    } catch (err) {
      return this.fail(`${this.dev.name}: the core put a malformed message on the well-behaved channel: ${(err as Error).message}`);
    }
    for (const m of answers) {
      const o = this.outstanding.get(m.requestId);
      if (!o) return this.fail(`${this.dev.name}: answer id ${m.requestId} type ${m.type} matches no request of the well-behaved channel`);
      if (m.type !== (o.type | MSG_RESPONSE_BIT)) return this.fail(`${this.dev.name}: answer id ${m.requestId} has type ${m.type} for a request of type ${o.type}`);
      this.outstanding.delete(m.requestId);
      this.answered++;
      this.onAnswer?.(`${this.dev.name === 'device A' ? 'A' : 'B'} good ${o.type.toString(16)} ${statusName(m.status)}`);
      o.onAnswer(m);
    }
  }

  private expectStatus(m: Message, what: string, ok: number[]): boolean {
    const tolerated: number[] = this.strict ? [] : [STATUS.TOO_MANY_OPEN.code, STATUS.QUOTA_EXCEEDED.code];
    if (ok.includes(m.status)) return true;
    if (!tolerated.includes(m.status)) this.fail(`${this.dev.name}: ${what} of the well-behaved channel answered ${statusName(m.status)} (script ${JSON.stringify(this.active?.script.s ?? null)})`);
    return false;
  }

  private startScript(script: GoodScript): void {
    this.active = { gen: this.run(script), script, waiting: false };
  }

  /** Feeds the last answer to the active script and sends its next request. Returns whether it sent one. */
  private advance(answer: Message | undefined): boolean {
    const a = this.active!;
    let r: IteratorResult<Step, void>;
    try {
      r = answer === undefined ? a.gen.next(undefined as unknown as Message) : a.gen.next(answer);
    } catch (err) {
      this.fail(`${this.dev.name}: script ${a.script.s} failed: ${(err as Error).message}`);
      this.active = undefined;
      return false;
    }
    if (r.done) {
      this.active = undefined;
      return false;
    }
    a.waiting = true;
    this.send(r.value, (m) => {
      if (this.active !== a) return;
      a.waiting = false;
      this.advance(m);
    });
    return true;
  }

  private putPath(name: string): [number, number] {
    const bytes = new TextEncoder().encode(name === '' ? GOOD_DIR : `${GOOD_DIR}/${name}`);
    this.dev.guestMem.write(dataSliceOffset(this.dev.geometry, GOOD) + PATH_AT, bytes);
    return [PATH_AT, bytes.byteLength];
  }

  private get chunkBytes(): number {
    return Math.min(4096, this.dev.geometry.dataSliceBytes - BUF_AT);
  }

  private sliceBytes(at: number, len: number): Uint8Array {
    return this.dev.guestMem.copyOut(dataSliceOffset(this.dev.geometry, GOOD) + at, len);
  }

  private hostFile(name: string): string {
    return path.join(this.dev.root, GOOD_DIR, name);
  }

  private *run(script: GoodScript): ScriptGen {
    const mem = this.dev.guestMem;
    const sliceAt = dataSliceOffset(this.dev.geometry, GOOD);
    const known = 'name' in script ? this.model.get(script.name) : undefined;
    const certain = known !== 'unknown';
    const check = (cond: boolean, what: string) => {
      if (!cond) throw new Error(`${script.s} ${'name' in script ? script.name : ''}: ${what}`);
    };
    const stepOf = (m: { type: number; payload: Uint8Array }): Step => ({ type: m.type, payload: m.payload });
    switch (script.s) {
      case 'put': {
        const open = yield stepOf(fileReq.open(...this.putPath(script.name), FILE_OPEN_FLAG.WRITE, script.data.byteLength));
        if (!this.expectStatus(open, 'FILE_OPEN WRITE', [STATUS.OK.code])) return;
        const h = u32At(open, FILE_INFO.offsets.handle);
        for (let at = 0; at < script.data.byteLength; at += this.chunkBytes) {
          const chunk = script.data.subarray(at, at + this.chunkBytes);
          mem.write(sliceAt + BUF_AT, chunk);
          const w = yield stepOf(fileReq.write(h, chunk.byteLength, at, BUF_AT));
          this.expectStatus(w, 'FILE_WRITE', [STATUS.OK.code]);
          check(u32At(w, FILE_IO_RESP.offsets.bytes) === chunk.byteLength, `wrote ${u32At(w, FILE_IO_RESP.offsets.bytes)} of ${chunk.byteLength} bytes`);
        }
        this.model.set(script.name, 'unknown'); // until the close is answered
        const c = yield stepOf(fileReq.close(h, script.commit ? FILE_CLOSE_FLAG.COMMIT : 0));
        const closed = this.expectStatus(c, 'FILE_CLOSE', [STATUS.OK.code]);
        if (script.commit && closed) {
          this.model.set(script.name, script.data);
          const host = readFileSync(this.hostFile(script.name));
          check(Buffer.compare(host, Buffer.from(script.data)) === 0, 'the host file differs from what was put');
        } else if (!script.commit) {
          if (known === undefined) this.model.delete(script.name);
          else this.model.set(script.name, known);
          if (known === undefined) check(!existsSync(this.hostFile(script.name)), 'a put without commit left the file');
          else if (certain) check(Buffer.compare(readFileSync(this.hostFile(script.name)), Buffer.from(known)) === 0, 'a put without commit changed the file');
        }
        return;
      }
      case 'get':
      case 'hash': {
        const open = yield stepOf(fileReq.open(...this.putPath(script.name), FILE_OPEN_FLAG.READ));
        if (open.status === STATUS.NOT_FOUND.code) {
          check(!certain || known === undefined, 'NOT_FOUND for a file that was put');
          return;
        }
        if (!this.expectStatus(open, 'FILE_OPEN READ', [STATUS.OK.code])) return;
        check(!certain || known !== undefined, 'opened a file that does not exist');
        const h = u32At(open, FILE_INFO.offsets.handle);
        if (script.s === 'hash') {
          const hs = yield stepOf(fileReq.hash(h));
          this.expectStatus(hs, 'FILE_HASH', [STATUS.OK.code]);
          check(hs.payload.byteLength === FILE_HASH_RESP_BYTES, `hash of ${hs.payload.byteLength} bytes`);
          if (certain && known) check(Buffer.from(hs.payload).equals(createHash('sha256').update(known).digest()), 'wrong sha256');
        } else {
          const got: Uint8Array[] = [];
          for (let at = 0; ; ) {
            const rd = yield stepOf(fileReq.read(h, this.chunkBytes, at, BUF_AT));
            if (!this.expectStatus(rd, 'FILE_READ', [STATUS.OK.code])) break;
            const n = u32At(rd, FILE_IO_RESP.offsets.bytes);
            check(n <= this.chunkBytes, `read ${n} bytes into a ${this.chunkBytes}-byte buffer`);
            if (n === 0) break;
            got.push(this.sliceBytes(BUF_AT, n));
            at += n;
          }
          if (certain && known) check(Buffer.concat(got).equals(Buffer.from(known)), 'read other bytes than were put');
        }
        const c = yield stepOf(fileReq.close(h, 0));
        this.expectStatus(c, 'FILE_CLOSE', [STATUS.OK.code]);
        return;
      }
      case 'stat': {
        const st = yield stepOf(fileReq.stat(...this.putPath(script.name)));
        if (!certain) return;
        if (known === undefined) return void check(st.status === STATUS.NOT_FOUND.code, `stat of a missing file: ${statusName(st.status)}`);
        if (!this.expectStatus(st, 'FILE_STAT', [STATUS.OK.code])) return;
        const dv = new DataView(st.payload.buffer, st.payload.byteOffset, st.payload.byteLength);
        check(dv.getUint32(FILE_INFO.offsets.type, true) === FILE_TYPE.FILE, 'stat type');
        check(Number(dv.getBigUint64(FILE_INFO.offsets.size, true)) === known.byteLength, 'stat size');
        return;
      }
      case 'list': {
        const names: string[] = [];
        for (let cookie = 0, pages = 0; pages < 64; pages++) {
          const ls = yield stepOf(fileReq.list(...this.putPath(''), BUF_AT, this.chunkBytes, cookie));
          if (!this.expectStatus(ls, 'FILE_LIST', [STATUS.OK.code])) return;
          const count = u32At(ls, FILE_LIST_RESP.offsets.count);
          const bytes = this.sliceBytes(BUF_AT, u32At(ls, FILE_LIST_RESP.offsets.bytes));
          const dv = new DataView(bytes.buffer);
          for (let i = 0, at = 0; i < count; i++) {
            const len = dv.getUint16(at + DIRENT.offsets.name_len, true);
            names.push(new TextDecoder().decode(bytes.subarray(at + DIRENT.sizeBytes, at + DIRENT.sizeBytes + len)));
            at += Math.ceil((DIRENT.sizeBytes + len) / 8) * 8;
          }
          cookie = u32At(ls, FILE_LIST_RESP.offsets.next_cookie);
          if (cookie === 0) break;
        }
        for (const [n, v] of this.model) if (v !== 'unknown') check(names.includes(n), `list misses ${n}`);
        for (const n of names) check(this.model.has(n), `list shows ${n}, which was never put`);
        return;
      }
      case 'remove': {
        const rm = yield stepOf(fileReq.remove(...this.putPath(script.name)));
        if (certain) {
          if (known === undefined) check(rm.status === STATUS.NOT_FOUND.code, `remove of a missing file: ${statusName(rm.status)}`);
          else this.expectStatus(rm, 'FILE_REMOVE', [STATUS.OK.code]);
        }
        if (rm.status === STATUS.OK.code || rm.status === STATUS.NOT_FOUND.code) {
          this.model.delete(script.name);
          check(!existsSync(this.hostFile(script.name)), 'removed file still on the host');
        }
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The noisy guest: keeps to the ring protocol, sends anything; every request it sends must be answered

class NoisyGuest {
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
    private readonly dev: Device,
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

// ---------------------------------------------------------------------------------------------------
// A run

export interface RunStats {
  ops: number;
  goodAnswers: number;
  accesses: number;
  /** Counts of what happened, to see the fuzz reaches the interesting places. */
  seen?: Record<string, number>;
}

export const newStats = (): RunStats => ({ ops: 0, goodAnswers: 0, accesses: 0, seen: {} });

function count(stats: RunStats, key: string, n = 1): void {
  if (stats.seen) stats.seen[key] = (stats.seen[key] ?? 0) + n;
}

function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      out.push(path.join(rel, e.name));
      if (e.isDirectory()) walk(path.join(d, e.name), path.join(rel, e.name));
    }
  };
  walk(dir, '');
  return out;
}

const openFds = (): number => readdirSync('/proc/self/fd').length;
const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const scratchBase = (): string => (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());

/** Runs one scenario; throws an Error listing what broke. */
export async function runScenario(scenario: Scenario, stats: RunStats): Promise<void> {
  const native = loadNative();
  const failures: string[] = [];
  const fail = (msg: string) => {
    if (failures.length < 10) failures.push(msg);
  };
  const fdsBefore = openFds();
  const base = mkdtempSync(path.join(scratchBase(), 'vmgmt-fuzz-'));
  const roots = ['a', 'b'].map((n) => path.join(base, `root-${n}`));
  const outside = path.join(base, 'outside');
  const devices: Device[] = [];
  try {
    for (const r of roots) {
      mkdirSync(path.join(r, GOOD_DIR), { recursive: true });
      mkdirSync(path.join(r, 'd'));
      writeFileSync(path.join(r, 'a'), 'hostile playground');
      symlinkSync('../outside', path.join(r, 'lnk'));
    }
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret'), 'host secret');

    // Host-started copies on device A: files outside the roots the guest reaches only by their token.
    const shared = path.join(outside, 'shared');
    writeFileSync(shared, Buffer.alloc(3000, 0x5a));
    writeFileSync(path.join(outside, 'incoming'), '');
    const transfers = new HostTransfers();
    const hostFds = [openSync(shared, constants.O_RDONLY), openSync(path.join(outside, 'incoming'), constants.O_WRONLY)];
    const hostInodes = hostFds.map((fd) => fstatSync(fd).ino);
    const transfer: Record<'to' | 'from', HostTransfer> = { to: transfers.create('to-guest', hostFds[0]!, 3000), from: transfers.create('from-guest', hostFds[1]!, 0) };
    const outsideBefore = listTree(base).filter((p) => !p.startsWith('root-'));

    const g = geometryOf(scenario.geometry);
    const a = new Device('device A', g, roots[0]!, native, fail, transfers, scenario.tuning);
    const b = new Device('device B', geometryOf(DEVICE_B_GEOMETRY), roots[1]!, native, fail);
    devices.push(a, b);
    const good = [new GoodGuest(a, false, fail), new GoodGuest(b, true, fail)] as const;
    const noisy = new NoisyGuest(a, fail);
    for (const x of [...good, noisy]) x.onAnswer = (key) => count(stats, key);
    noisy.reset();
    const hostileFg = new Map<number, FakeGuest>();
    const hostile = (ch: number) => hostileFg.get(ch) ?? hostileFg.set(ch, new FakeGuest(a.guestMem, g, ch)).get(ch)!;
    const protectedRanges: [number, number][] = [GOOD, NOISY].flatMap((ch) => [
      [channelOffset(g, ch), channelOffset(g, ch) + g.channelStrideBytes] as [number, number],
      [dataSliceOffset(g, ch), dataSliceOffset(g, ch) + g.dataSliceBytes] as [number, number],
    ]);
    const hostRequestsSeen = { n: 0 };

    const check = (after: string) => {
      for (const d of devices) {
        for (const v of d.coreMem.violations.splice(0)) fail(`${d.name}: ${v}`);
        for (const ch of d.internals().channels) {
          if (ch.inFlight < 0 || ch.inFlight > LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) fail(`${d.name}: channel ${ch.index} has ${ch.inFlight} requests in flight`);
          if (ch.outstanding.size > LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) fail(`${d.name}: channel ${ch.index} has ${ch.outstanding.size} host requests outstanding`);
          if (ch.pending.length > 2 * LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) fail(`${d.name}: channel ${ch.index} has ${ch.pending.length} answers queued`);
        }
        const u = d.files.usage;
        if (u.openFiles < 0 || u.openFiles > DEFAULT_FILE_LIMITS.maxOpenFiles || u.reservedBytes < 0) fail(`${d.name}: file service usage ${JSON.stringify(u)}`);
      }
      if (failures.length > 0) throw new Error(`after ${after}:\n  ${failures.join('\n  ')}`);
    };

    const apply = async (op: Op) => {
      switch (op.k) {
        case 'ping':
          good[op.dev].queuePing(op.payload);
          return good[op.dev].step();
        case 'file':
          good[op.dev].queueScript(op.script);
          return good[op.dev].step();
        case 'good':
          return good[op.dev].step();
        case 'noisy':
          return noisy.send(op.spec);
        case 'noisyDrain':
          return noisy.drain();
        case 'noisyReset':
          return noisy.reset(op.mode);
        case 'raw': {
          let end = Math.min(op.at + op.bytes.byteLength, g.regionSizeBytes);
          for (const [s, e] of protectedRanges) {
            if (op.at >= s && op.at < e) return;
            if (op.at < s && end > s) end = s;
          }
          a.guestMem.write(op.at, op.bytes.subarray(0, end - op.at));
          return;
        }
        case 'hSend': {
          const r = ringOffset(g, op.ch, 'g2c');
          const prod = a.guestMem.loadU32(r + RING.offsets.prod);
          a.guestMem.write(slotsOffset(g, op.ch, 'g2c') + (prod & (g.ringSlots - 1)) * g.slotSizeBytes, slotFromSpec(op.spec, g.slotSizeBytes));
          a.guestMem.storeU32(r + RING.offsets.prod, (prod + 1) >>> 0);
          return;
        }
        case 'hIndex': {
          const r = ringOffset(g, op.ch, op.dir);
          const at = r + RING.offsets[op.field];
          const other = a.guestMem.loadU32(r + (op.field === 'prod' ? RING.offsets.cons : RING.offsets.prod));
          const v = op.how === 'rollback' ? other - 1 - (op.n % 4) : op.how === 'jump' ? other + g.ringSlots + (op.n % 3) : op.how === 'wrap' ? 0xffffffff - (op.n % 3) : op.n;
          a.guestMem.storeU32(at, v >>> 0);
          return;
        }
        case 'hCtl':
          a.guestMem.storeU32(channelOffset(g, op.ch) + CHANNEL.offsets[op.field], op.value);
          return;
        case 'hReset': {
          const fg = hostile(op.ch);
          fg.claim(3000 + op.ch);
          return;
        }
        case 'header': {
          const f = HEADER.fields.find((x) => x.name === op.field)!;
          if (op.field === 'reset_request') a.guestMem.storeU32(f.offset, (a.guestMem.loadU32(f.offset) + 1) >>> 0);
          else if (op.field === 'version_major' || op.field === 'version_minor') a.guestMem.storeU32(HEADER.offsets.version_major, op.value);
          else a.guestMem.storeU32(f.offset, op.value);
          return;
        }
        case 'slice': {
          const len = Math.min(op.bytes.byteLength, g.dataSliceBytes - op.at);
          a.guestMem.write(dataSliceOffset(g, op.ch) + op.at, op.bytes.subarray(0, len));
          return;
        }
        case 'hostRequest': {
          const p = a.request(op.ch, op.payload);
          if (!p) return;
          hostRequestsSeen.n++;
          void p.then(
            (m) => {
              if (m.type !== (MSG_TYPE.AGENT_COPY | MSG_RESPONSE_BIT)) fail(`host request on channel ${op.ch} resolved with type ${m.type}`);
            },
            (err: unknown) => {
              if (!(err instanceof CoreRequestError)) fail(`host request on channel ${op.ch} rejected with ${String(err)}`);
            },
          );
          if (op.ch === NOISY) noisy.noteHostRequest(p);
          return;
        }
        case 'doorbell':
          return devices[op.dev]!.kick();
        case 'settle':
          for (let i = 0; i < 3; i++) await nextTurn();
          for (const d of devices) d.runShell();
          return;
        case 'transfer': {
          // The agent's side of a host-started copy: FILE_OPEN of the transfer's path, on the noisy channel.
          const bytes = new TextEncoder().encode(transfer[op.dir].hostPath);
          a.guestMem.write(dataSliceOffset(g, NOISY), bytes);
          const m = fileReq.open(0, bytes.byteLength, op.flags, op.sizeBytes);
          noisy.send({ type: m.type, flags: 0, length: undefined, requestId: 500, status: 0, payload: m.payload });
          return;
        }
        case 'handleIo': {
          // A request on the last handle the noisy channel was given (a host transfer's, often).
          const h = noisy.lastHandle;
          const m =
            op.type === MSG_TYPE.FILE_READ ? fileReq.read(h, op.length, op.fileOffset, op.bufOffset)
            : op.type === MSG_TYPE.FILE_WRITE ? fileReq.write(h, op.length, op.fileOffset, op.bufOffset)
            : op.type === MSG_TYPE.FILE_HASH ? fileReq.hash(h)
            : fileReq.close(h, op.closeFlags);
          noisy.send({ type: m.type, flags: 0, length: undefined, requestId: 501, status: 0, payload: m.payload });
          return;
        }
        case 'restart':
          // Host requests in flight die with the old core (the daemon's timeout answers them).
          if (a.restart()) noisy.unsettled.clear();
          return;
      }
    };

    for (const [i, op] of scenario.ops.entries()) {
      stats.ops++;
      await apply(op);
      for (const d of devices) d.runShell(2);
      check(`op ${i} (${op.k})`);
    }

    // Quiesce: async answers land, the shell runs, the guests take what is theirs. No doorbells beyond
    // what the protocol has a guest ring: a missing answer here is an answer that never comes.
    for (let turn = 0; turn < 400; turn++) {
      await nextTurn();
      for (const d of devices) d.runShell();
      for (const gg of good) gg.step();
      noisy.drain();
      check('quiescing');
      const busy = devices.some((d) => d.asyncInFlight > 0 || d.scheduled);
      if (!busy && good.every((gg) => gg.idle) && (!noisy.accountable || (noisy.waitingFor().length === 0 && noisy.unsettled.size === 0)) && turn > 2) break;
    }
    good.forEach((gg, i) => {
      if (!gg.idle) fail(`${devices[i]!.name}: the well-behaved channel is stuck: ${gg.describeWaiting()}`);
    });
    if (noisy.accountable && noisy.waitingFor().length > 0) fail(`noisy channel: no answer to ${noisy.waitingFor().join(', ')} (channel READY)`);
    if (noisy.accountable && noisy.unsettled.size > 0) fail(`noisy channel: ${noisy.unsettled.size} host-started requests answered by the guest never settled`);
    // The well-behaved channels still answer after all that.
    for (const gg of good) {
      gg.queuePing(new Uint8Array([0x60, 0x0d]));
      for (let turn = 0; turn < 50 && !gg.idle; turn++) {
        gg.step();
        await nextTurn();
        for (const d of devices) d.runShell();
      }
      if (!gg.idle) fail(`a well-behaved channel does not answer a last ping: ${gg.describeWaiting()}`);
    }
    check('the final pings');
    stats.goodAnswers += good[0].answered + good[1].answered;

    for (const d of devices.splice(0)) {
      for (const [k, v] of Object.entries(d.core.counters)) count(stats, `${d.name} ${k}`, v);
      count(stats, `${d.name} restarts`, d.restarts);
      d.close();
      stats.accesses += d.coreMem.accesses;
    }
    for (const [i, r] of roots.entries()) {
      const temps = listTree(r).filter((p) => path.basename(p).startsWith(TEMP_PREFIX));
      if (temps.length > 0) fail(`root ${i}: temp files left after close: ${temps.join(', ')}`);
    }
    const outsideAfter = listTree(base).filter((p) => !p.startsWith('root-'));
    if (JSON.stringify(outsideAfter) !== JSON.stringify(outsideBefore)) fail(`something changed outside the roots: ${outsideAfter.join(', ')}`);
    if (readFileSync(path.join(outside, 'secret'), 'utf8') !== 'host secret') fail('the file outside the roots changed');
    if (!readFileSync(shared).equals(Buffer.alloc(3000, 0x5a))) fail('the file of a to-guest transfer changed');
    // The transfers' fds are the host's: the file service must never close them.
    hostFds.forEach((fd, i) => {
      try {
        if (fstatSync(fd).ino !== hostInodes[i]) fail(`transfer fd ${fd} now refers to another file: the file service closed it`);
        closeSync(fd);
      } catch (err) {
        fail(`transfer fd ${fd} is gone: the file service closed it (${(err as Error).message})`);
      }
    });
    if (failures.length > 0) throw new Error(`after closing:\n  ${failures.join('\n  ')}`);
    const fdsAfter = openFds();
    if (fdsAfter > fdsBefore) throw new Error(`${fdsAfter - fdsBefore} file descriptors leaked (${fdsBefore} before, ${fdsAfter} after)`);
  } finally {
    for (const d of devices) d.close();
    rmSync(base, { recursive: true, force: true });
  }
}
