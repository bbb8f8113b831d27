// The well-behaved guest of the core fuzz: pings and file scripts on its channel, every answer checked
// against a model of its files and the host files themselves.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { channelOffset, dataSliceOffset } from '../layout/geometry.js';
import { CHANNEL, CHANNEL_STATE, DIRENT, FILE_CLOSE_FLAG, FILE_HASH_RESP_BYTES, FILE_INFO, FILE_IO_RESP, FILE_LIST_RESP, FILE_OPEN_FLAG, FILE_TYPE, LIMITS, MODE, MSG_RESPONSE_BIT, MSG_TYPE, STATUS } from '../layout/wire-layout.js';
import type { Message } from '../protocol/message-codec.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { fileReq } from '../testing/file-requests.js';
import { FuzzDevice } from './fuzz-device.js';
import { BUF_AT, GOOD, GOOD_DIR, type GoodScript, PATH_AT, statusName, u32At } from './core-scenario.js';

type Step = { type: number; payload: Uint8Array };
type ScriptGen = Generator<Step, void, Message>;

export class GoodGuest {
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
    private readonly dev: FuzzDevice,
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
