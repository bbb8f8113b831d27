// Plays a rogue guest from the host side: takes a running VM's device region and doorbell eventfds out of
// its QEMU process (pidfd_getfd, the fd numbers the daemon recorded in the VM's state), maps the region
// and writes garbage into it while ringing the core, the way a guest that owns BAR2 and BAR0 could.
// Seeded, so a failing run can be replayed (VMGMT_ROGUE_SEED).
import { channelOffset, dataSliceOffset, type Geometry, ringOffset, slotsOffset } from '../../device-backend/layout/geometry.js';
import { CHANNEL, DEVICE_STATUS, FILE_OPEN_FLAG, HEADER, MODE, MSG_HEADER, MSG_TYPE, RING } from '../../device-backend/layout/wire-layout.js';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import type { QemuDeviceFds } from '../../device-backend/management-device.js';

export interface ScribbleStats {
  durationMs: number;
  writes: number;
  doorbells: number;
  /** Writes by kind of garbage. */
  byKind: Record<string, number>;
}

/** xorshift32: small, fast and reproducible from a seed. */
class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

export class RegionScribbler {
  private closed = false;

  private constructor(
    private readonly native: VmgmtNative,
    private readonly buffer: ArrayBuffer,
    private readonly memFd: number,
    private readonly doorbellFds: number[],
    private readonly geometry: Geometry,
  ) {}

  /** Duplicates QEMU's region memfd and the eventfds QEMU writes to ring peer 0, and maps the region. */
  static open(native: VmgmtNative, opts: { vmName: string; qemuPid: number; fds: QemuDeviceFds; geometry: Geometry }): RegionScribbler {
    const pidfd = native.pidfdOpen(opts.qemuPid);
    const taken: number[] = [];
    try {
      const take = (fd: number, expect: RegExp): number => {
        const mine = native.pidfdGetfd(pidfd, fd);
        taken.push(mine);
        const target = native.fdRealpath(mine);
        if (!expect.test(target)) throw new Error(`QEMU pid ${opts.qemuPid} fd ${fd} is ${target}, not what the VM's state says (${expect})`);
        return mine;
      };
      const memFd = take(opts.fds.memFd, new RegExp(`^/memfd:vmgmt-${opts.vmName} `));
      const doorbellFds = opts.fds.coreEventFds.map((fd) => take(fd, /^anon_inode:\[eventfd\]$/));
      const buffer = native.mapShared(memFd, opts.geometry.regionSizeBytes);
      return new RegionScribbler(native, buffer, memFd, doorbellFds, opts.geometry);
    } catch (err) {
      for (const fd of taken) native.close(fd);
      throw err;
    } finally {
      native.close(pidfd);
    }
  }

  /**
   * Scribbles for durationMs: bursts of about burstMs of writes and doorbells, then a yield to the event
   * loop so the rest of the test keeps running.
   */
  async run(opts: { durationMs: number; seed: number; burstMs?: number }): Promise<ScribbleStats> {
    if (this.closed) throw new Error('scribbler is closed');
    const rng = new Prng(opts.seed);
    const g = this.geometry;
    const dv = new DataView(this.buffer);
    const bytes = new Uint8Array(this.buffer);
    const stats: ScribbleStats = { durationMs: 0, writes: 0, doorbells: 0, byKind: {} };
    const count = (kind: string): void => {
      stats.writes++;
      stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
    };
    const u32 = (off: number, v: number): void => dv.setUint32(off, v >>> 0, true);
    const wild = (): number => rng.pick([0, 1, 2, 0xffffffff, 0x80000000, g.ringSlots, g.ringSlots + 1, rng.u32(), rng.below(256)]);
    const randomBytes = (off: number, len: number): void => {
      for (let i = 0; i < len; i++) bytes[off + i] = rng.below(256);
    };
    const types = [MSG_TYPE.PING, MSG_TYPE.SET_MODE, ...Object.values(MSG_TYPE), 0x7777, 0x8001, 0x8201, 0xffff];
    const paths = ['../../etc/passwd', '/etc/shadow', 'a/../../b', '.', 'x'.repeat(300), 'ok.bin', '\u0000nul', '..'];
    const H = HEADER.offsets;
    const C = CHANNEL.offsets;
    const R = RING.offsets;
    const M = MSG_HEADER.offsets;

    const ops: (() => void)[] = [
      // Random bytes anywhere in the header.
      () => {
        randomBytes(rng.below(HEADER.sizeBytes - 16), 1 + rng.below(16));
        count('header-bytes');
      },
      // Structured header fields: magic, geometry, status, device reset requests.
      () => {
        const field = rng.pick(['magic', 'version_major', 'ring_slots', 'slot_size', 'channel_count', 'device_status', 'reset_request', 'reset_done', 'data_slice_size'] as const);
        if (field === 'device_status') u32(H.device_status, rng.pick([DEVICE_STATUS.DRIVER_OK, DEVICE_STATUS.NEEDS_RESET, 0xff, rng.u32(), 0]));
        else if (field === 'reset_request') u32(H.reset_request, dv.getUint32(H.reset_request, true) + 1);
        else if (field === 'version_major') dv.setUint16(H.version_major, rng.below(0x10000), true);
        else u32(H[field], wild());
        count('header-field');
      },
      // Channel control blocks: owner, resets, state, mode, error count.
      () => {
        const base = channelOffset(g, rng.below(g.channelCount));
        const field = rng.pick(['owner', 'generation', 'reset_request', 'reset_done', 'state', 'last_status', 'error_count', 'mode'] as const);
        if (field === 'reset_request') u32(base + C.reset_request, dv.getUint32(base + C.reset_request, true) + 1);
        else if (field === 'mode') u32(base + C.mode, rng.pick([MODE.FILE, MODE.AGENT, 99, rng.u32()]));
        else u32(base + C[field], wild());
        count('channel-ctl');
      },
      // Ring indices: plausible ones (so the core reads slots) and wild ones (BAD_INDEX).
      () => {
        const ch = rng.below(g.channelCount);
        const dir = rng.pick(['g2c', 'c2g'] as const);
        const ring = ringOffset(g, ch, dir);
        const field = rng.pick(['prod', 'cons', 'need_wakeup'] as const);
        const current = dv.getUint32(ring + R[field], true);
        u32(ring + R[field], rng.below(3) === 0 ? wild() : current + 1 + rng.below(g.ringSlots));
        count('ring-index');
      },
      // A slot with a message header that looks real: known types, odd lengths, flags, ids, statuses.
      () => {
        const ch = rng.below(g.channelCount);
        const slot = slotsOffset(g, ch, rng.pick(['g2c', 'c2g'] as const)) + rng.below(g.ringSlots) * g.slotSizeBytes;
        dv.setUint16(slot + M.type, rng.pick(types), true);
        dv.setUint16(slot + M.flags, rng.below(4) === 0 ? rng.below(0x10000) : 0, true);
        u32(slot + M.length, rng.pick([0, 8, 16, 24, g.slotSizeBytes - 16, g.slotSizeBytes, rng.u32()]));
        u32(slot + M.request_id, rng.u32());
        u32(slot + M.status, rng.below(4) === 0 ? rng.u32() : 0);
        // Payloads shaped like SET_MODE, FILE_OPEN and FILE_IO with random numbers.
        const p = slot + MSG_HEADER.sizeBytes;
        u32(p, rng.pick([MODE.FILE, MODE.AGENT, rng.below(dataSliceLimit(g)), rng.u32()]));
        u32(p + 4, rng.pick([0, rng.below(64), rng.below(5000), rng.u32()]));
        u32(p + 8, rng.pick([FILE_OPEN_FLAG.READ, FILE_OPEN_FLAG.WRITE, 0, rng.u32()]));
        u32(p + 12, rng.below(4) === 0 ? rng.u32() : 0);
        u32(p + 16, rng.pick([0, 1, rng.below(1 << 20), rng.u32()]));
        u32(p + 20, rng.below(4) === 0 ? rng.u32() : 0);
        count('slot-message');
      },
      // Random bytes in a slot.
      () => {
        const slot = slotsOffset(g, rng.below(g.channelCount), 'g2c') + rng.below(g.ringSlots) * g.slotSizeBytes;
        randomBytes(slot, 16 + rng.below(g.slotSizeBytes - 16));
        count('slot-bytes');
      },
      // A channel's data slice: path-like strings and random bytes where requests point.
      () => {
        const slice = dataSliceOffset(g, rng.below(g.channelCount));
        const at = slice + rng.below(64) * 64;
        if (rng.below(2) === 0) bytes.set(new TextEncoder().encode(rng.pick(paths)), at);
        else randomBytes(at, 1 + rng.below(512));
        count('data-slice');
      },
    ];

    const start = performance.now();
    const burstMs = opts.burstMs ?? 2;
    while (performance.now() - start < opts.durationMs && !this.closed) {
      const burstEnd = performance.now() + burstMs;
      while (performance.now() < burstEnd) {
        rng.pick(ops)();
        if (rng.below(4) === 0) {
          this.native.eventfdWrite(rng.pick(this.doorbellFds));
          stats.doorbells++;
        }
      }
      await new Promise((r) => setImmediate(r));
    }
    stats.durationMs = performance.now() - start;
    return stats;
  }

  /**
   * Leaves the device as broken as a guest can without ringing the core afterwards: a header magic no
   * driver accepts, DRIVER_OK set (so no driver resets the device on its own), and every channel owned
   * by pid 1, which is alive in every guest. Only a driver that resets the device can recover it.
   */
  leaveBroken(): void {
    if (this.closed) throw new Error('scribbler is closed');
    const dv = new DataView(this.buffer);
    dv.setUint32(HEADER.offsets.magic, 0xbad0bad0, true);
    dv.setUint32(HEADER.offsets.device_status, DEVICE_STATUS.ACKNOWLEDGE | DEVICE_STATUS.DRIVER | DEVICE_STATUS.FEATURES_OK | DEVICE_STATUS.DRIVER_OK, true);
    this.setOwners(1);
    // No device reset pending either, so a doorbell from anyone else (the guest's agent) does not repair it.
    dv.setUint32(HEADER.offsets.reset_done, dv.getUint32(HEADER.offsets.reset_request, true), true);
  }

  /** Writes `owner` into every channel's owner field, as a guest could. */
  setOwners(owner: number): void {
    if (this.closed) throw new Error('scribbler is closed');
    const dv = new DataView(this.buffer);
    for (let ch = 0; ch < this.geometry.channelCount; ch++) dv.setUint32(channelOffset(this.geometry, ch) + CHANNEL.offsets.owner, owner >>> 0, true);
  }

  /** Unmaps the region and closes the duplicated fds; QEMU's own are untouched. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.unmap(this.buffer);
    for (const fd of [this.memFd, ...this.doorbellFds]) this.native.close(fd);
  }
}

function dataSliceLimit(g: Geometry): number {
  return Math.max(1, g.dataSliceBytes);
}
