// One VM's management device as the daemon runs it: its own memfd region mapped into Node, the core
// over it, and the ivshmem server QEMU connects to. The I/O shell around the pure DeviceCore.
//
// After a daemon restart the device is re-attached without QEMU's help: QEMU still holds the region and
// the eventfds it was given, and pidfd_getfd duplicates them back out of it (locateInQemu() recorded
// which of QEMU's fd numbers they are while the first daemon still had its own copies to compare).
import { readdirSync } from 'node:fs';
import { computeGeometry, DEFAULT_GEOMETRY, type Geometry, type GeometryOptions } from './layout/geometry.js';
import { DeviceCore } from './core/device-core.js';
import type { CoreLogger } from './core/core-logger.js';
import type { MessageService, VmIdentity } from './core/message-service.js';
import { pingService } from './core/ping-service.js';
import { DEFAULT_CORE_LOG_LIMIT, rateLimitedLogger } from './core/rate-limited-logger.js';
import { IvshmemServer } from './ivshmem/ivshmem-server.js';
import { GuestMemory } from './memory/guest-memory.js';
import type { VmgmtNative } from './native/index.js';

const MAX_POLL_DELAY_MS = 50;

export interface ManagementDeviceOptions {
  native: VmgmtNative;
  name: string;
  socketPath: string;
  geometry?: Partial<GeometryOptions>;
  services?: readonly MessageService[];
  log: CoreLogger;
  /** Bound into every service (default: the device's name). */
  vm?: VmIdentity;
  /** Where the services' snapshots are kept across a daemon restart; without it they are not kept. */
  snapshots?: ServiceSnapshotStore;
}

/** The daemon's keeping of services' snapshots (DeviceCore.snapshotServices()), one per VM. */
export interface ServiceSnapshotStore {
  /** The last saved snapshots; {} when there are none. */
  load(): Record<string, unknown>;
  save(snapshots: Record<string, unknown>): void;
}

/** QEMU's fd numbers for the device's region and eventfds: what a restarted daemon needs to re-attach. */
export interface QemuDeviceFds {
  memFd: number;
  coreEventFds: number[];
  clientEventFds: number[];
}

type Origin = { kind: 'fresh' } | { kind: 'reattach'; memFd: number; coreEventFds: number[]; clientEventFds: number[] };

export class ManagementDevice {
  readonly geometry: Geometry;
  readonly memFd: number;
  readonly core: DeviceCore;
  readonly server: IvshmemServer;
  readonly origin: 'fresh' | 'reattached';
  private buffer: ArrayBuffer | undefined;
  private retry: NodeJS.Immediate | undefined;
  private snapshotTimer: NodeJS.Immediate | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private pollDelayMs = 0;
  private closed = false;

  private constructor(
    private readonly opts: ManagementDeviceOptions,
    from: Origin,
  ) {
    const result = computeGeometry({ ...DEFAULT_GEOMETRY, ...opts.geometry });
    if (!result.ok) throw new Error(`invalid management device geometry for ${opts.name}: ${result.reason}`);
    this.geometry = result.geometry;
    this.origin = from.kind === 'fresh' ? 'fresh' : 'reattached';
    const n = opts.native;
    this.memFd = from.kind === 'fresh' ? n.memfdCreate(`vmgmt-${opts.name}`, this.geometry.regionSizeBytes) : from.memFd;
    try {
      this.buffer = n.mapShared(this.memFd, this.geometry.regionSizeBytes);
      this.server = new IvshmemServer({
        native: n,
        socketPath: opts.socketPath,
        shmFd: this.memFd,
        vectors: this.geometry.vectors,
        onDoorbell: () => this.serve(),
        log: opts.log,
        ...(from.kind === 'reattach' ? { adopt: { coreEventFds: from.coreEventFds, clientEventFds: from.clientEventFds } } : {}),
      });
      const coreOpts = {
        mem: new GuestMemory(this.buffer),
        geometry: this.geometry,
        services: opts.services ?? [pingService],
        notifyGuest: (vector: number) => this.server.notifyGuest(vector),
        onWorkPending: () => this.scheduleServe(),
        onServiceStateChanged: () => this.scheduleSnapshot(),
        vm: opts.vm ?? { name: opts.name },
        // What the core logs, a guest can provoke at will: bounded per message (the counters keep totals).
        log: rateLimitedLogger(opts.log, { ...DEFAULT_CORE_LOG_LIMIT, nowMs: () => performance.now() }),
      };
      this.core = from.kind === 'fresh' ? DeviceCore.initialize(coreOpts) : DeviceCore.reattach(coreOpts, this.loadSnapshots());
    } catch (err) {
      for (const s of opts.services ?? []) s.close?.();
      if (this.buffer) n.unmap(this.buffer);
      n.close(this.memFd);
      if (from.kind === 'reattach') for (const fd of [...from.coreEventFds, ...from.clientEventFds]) n.close(fd);
      throw err;
    }
  }

  /** Creates the region and starts listening; start QEMU after this returns. */
  static start(opts: ManagementDeviceOptions): ManagementDevice {
    const device = new ManagementDevice(opts, { kind: 'fresh' });
    try {
      device.server.listen();
    } catch (err) {
      device.close();
      throw err;
    }
    return device;
  }

  /**
   * Takes the device back from a running QEMU after a daemon restart and resumes serving: the region
   * and eventfds are duplicated out of QEMU, the header is checked, and pending guest work is served.
   */
  static reattach(opts: ManagementDeviceOptions & { qemuPid: number; fds: QemuDeviceFds }): ManagementDevice {
    const n = opts.native;
    const pidfd = n.pidfdOpen(opts.qemuPid);
    const taken: number[] = [];
    const take = (fd: number, what: string, expect: RegExp): number => {
      const mine = n.pidfdGetfd(pidfd, fd);
      taken.push(mine);
      const target = n.fdRealpath(mine);
      if (!expect.test(target)) throw new Error(`QEMU pid ${opts.qemuPid} fd ${fd} should be the ${what} but is ${target}: the VM's recorded device state is stale`);
      return mine;
    };
    try {
      const memFd = take(opts.fds.memFd, 'device region', new RegExp(`^/memfd:vmgmt-${opts.name} `));
      const coreEventFds = opts.fds.coreEventFds.map((fd) => take(fd, 'core eventfd', /^anon_inode:\[eventfd\]$/));
      const clientEventFds = opts.fds.clientEventFds.map((fd) => take(fd, 'guest eventfd', /^anon_inode:\[eventfd\]$/));
      const device = new ManagementDevice(opts, { kind: 'reattach', memFd, coreEventFds, clientEventFds });
      device.serve();
      return device;
    } catch (err) {
      for (const fd of taken) n.close(fd);
      throw err;
    } finally {
      n.close(pidfd);
    }
  }

  /**
   * Finds QEMU's fd numbers for our region and eventfds by comparing open file descriptions (kcmp).
   * QEMU takes its own eventfds asynchronously after set-up, so this retries until all are there.
   */
  async locateInQemu(qemuPid: number, opts: { timeoutMs?: number } = {}): Promise<QemuDeviceFds> {
    const n = this.opts.native;
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      const ours = { core: this.server.coreEventFds, client: this.server.clientEventFds };
      const found = { memFd: [] as number[], core: ours.core.map(() => -1), client: ours.client.map(() => -1) };
      for (const entry of readdirSync(`/proc/${qemuPid}/fd`)) {
        const theirs = Number(entry);
        if (n.kcmpFile(process.pid, this.memFd, qemuPid, theirs)) found.memFd.push(theirs);
        ours.core.forEach((fd, i) => n.kcmpFile(process.pid, fd, qemuPid, theirs) && (found.core[i] = theirs));
        ours.client.forEach((fd, i) => n.kcmpFile(process.pid, fd, qemuPid, theirs) && (found.client[i] = theirs));
      }
      const complete = found.memFd.length > 0 && ours.client.length > 0 && ![...found.core, ...found.client].includes(-1);
      if (complete) return { memFd: found.memFd[0]!, coreEventFds: found.core, clientEventFds: found.client };
      if (Date.now() > deadline) {
        throw new Error(`QEMU pid ${qemuPid} does not hold all of the device's fds (region ${found.memFd.length > 0}, core eventfds ${found.core.join(',')}, guest eventfds ${found.client.join(',')}): did it connect to ${this.opts.socketPath}?`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private serve(): void {
    if (this.closed) return;
    let result;
    try {
      result = this.core.process();
    } catch (err) {
      // A bug of ours, not guest input (the core validates that): log it, keep the daemon up.
      this.opts.log.error('management core failed while serving the guest', { error: (err as Error).stack });
      return;
    }
    if (!result.more) {
      this.pollDelayMs = 0;
      return;
    }
    if (!result.waitingForGuest) {
      this.pollDelayMs = 0;
      this.scheduleServe();
      return;
    }
    // Answers wait for the guest to make room, and a guest frees c2g slots without ringing: poll, backing
    // off from 1 ms to 50 ms, so a guest that never reads costs a timer rather than a spinning core.
    this.pollDelayMs = Math.min(MAX_POLL_DELAY_MS, Math.max(1, this.pollDelayMs * 2));
    if (this.retry || this.pollTimer || this.closed) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.serve();
    }, this.pollDelayMs);
  }

  private scheduleServe(): void {
    if (this.retry || this.closed) return;
    this.retry = setImmediate(() => {
      this.retry = undefined;
      this.serve();
    });
  }

  private loadSnapshots(): Record<string, unknown> {
    try {
      return this.opts.snapshots?.load() ?? {};
    } catch (err) {
      this.opts.log.warn('could not read the services\' saved state; channels in a mode must be reset', { error: (err as Error).message });
      return {};
    }
  }

  private scheduleSnapshot(): void {
    if (this.snapshotTimer || this.closed || !this.opts.snapshots) return;
    this.snapshotTimer = setImmediate(() => {
      this.snapshotTimer = undefined;
      this.saveSnapshots();
    });
  }

  private saveSnapshots(): void {
    if (!this.opts.snapshots || !this.core) return;
    try {
      this.opts.snapshots.save(this.core.snapshotServices());
    } catch (err) {
      this.opts.log.warn('could not save the services\' state; after a daemon restart their channels will be reset', { error: (err as Error).message });
    }
  }

  /** Stops serving; host requests still waiting fail with `reason` (e.g. "VM web stopped"). */
  close(reason = `the management device of ${this.opts.name} closed`): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retry) clearImmediate(this.retry);
    if (this.snapshotTimer) clearImmediate(this.snapshotTimer);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.saveSnapshots();
    this.core?.close(reason);
    this.server?.close();
    if (this.buffer) this.opts.native.unmap(this.buffer);
    this.buffer = undefined;
    this.opts.native.close(this.memFd);
  }
}
