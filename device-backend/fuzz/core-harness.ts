// The whole core under attack: device A (a hostile VM) has a well-behaved channel, a noisy channel that
// keeps to the ring protocol but sends messages with arbitrary fields, and hostile channels that write
// anything anywhere outside those two; device B (another VM, its own region, core and file root) only
// has a well-behaved channel. A run applies a sequence of operations (plain data, so fast-check can shrink
// and print it) and checks after each one: nothing escaped the core, every access the core made stayed in
// its part of the region (AccessCheckedMemory), queues are bounded. At the end every request the protocol
// promises an answer has one, the well-behaved channels of both devices still answer correctly, and
// closing the devices leaves no temp file, no fd and nothing outside the roots.
import { closeSync, constants, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreRequestError, DEFAULT_PUSH_QUEUE_LIMIT } from '../core/device-core.js';
import { channelOffset, dataSliceOffset, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, HEADER, LIMITS, MSG_RESPONSE_BIT, MSG_TYPE, RING } from '../layout/wire-layout.js';
import { loadNative } from '../native/index.js';
import { DEFAULT_FILE_LIMITS } from '../services/file/file-root-config.js';
import { type HostTransfer, HostTransfers } from '../services/agent/host-transfers.js';
import { TEMP_PREFIX } from '../services/file/file-path.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { fileReq } from '../testing/file-requests.js';
import { slotFromSpec } from './arbitraries.js';
import { FuzzDevice } from './fuzz-device.js';
import { GoodGuest } from './good-guest.js';
import { NoisyGuest } from './noisy-guest.js';
import { DEVICE_B_GEOMETRY, geometryOf, GOOD, GOOD_DIR, NOISY, type Op, type Scenario } from './core-scenario.js';

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
const ASYNC_QUIESCE_MS = 10_000;
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
  const devices: FuzzDevice[] = [];
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
    const transfer: Record<'to' | 'from', HostTransfer> = {
      to: transfers.create({ direction: 'to-guest', fd: hostFds[0]!, totalBytes: 3000 }),
      from: transfers.create({ direction: 'from-guest', fd: hostFds[1]!, totalBytes: 0 }),
    };
    const outsideBefore = listTree(base).filter((p) => !p.startsWith('root-'));

    const g = geometryOf(scenario.geometry);
    const a = new FuzzDevice('device A', g, roots[0]!, native, fail, transfers, scenario.tuning);
    const b = new FuzzDevice('device B', geometryOf(DEVICE_B_GEOMETRY), roots[1]!, native, fail);
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
          if (ch.answers.length > 2 * LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) fail(`${d.name}: channel ${ch.index} has ${ch.answers.length} answers queued`);
          if (ch.outbox.length > DEFAULT_PUSH_QUEUE_LIMIT + LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) fail(`${d.name}: channel ${ch.index} has ${ch.outbox.length} messages queued`);
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
    // Answers that wait on the thread pool (the file mode's reads, writes and fsyncs) take real time, not
    // turns: while any is in flight the turn waits on a timer, for up to ASYNC_QUIESCE_MS in all.
    const asyncDeadline = performance.now() + ASYNC_QUIESCE_MS;
    for (let turn = 0; turn < 400; turn++) {
      if (devices.some((d) => d.asyncInFlight > 0) && performance.now() < asyncDeadline) {
        await new Promise<void>((r) => setTimeout(r, 1));
        turn--;
        continue;
      }
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
