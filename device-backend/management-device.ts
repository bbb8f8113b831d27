// One VM's management device as the daemon runs it: its own memfd region mapped into Node, the core
// over it, and the ivshmem server QEMU connects to. The I/O shell around the pure DeviceCore.
import { computeGeometry, DEFAULT_GEOMETRY, type Geometry, type GeometryOptions } from './layout/geometry.js';
import { DeviceCore } from './core/device-core.js';
import type { CoreLogger } from './core/core-logger.js';
import type { MessageService } from './core/message-service.js';
import { pingService } from './core/ping-service.js';
import { IvshmemServer } from './ivshmem/ivshmem-server.js';
import { GuestMemory } from './memory/guest-memory.js';
import type { VmgmtNative } from './native/index.js';

export interface ManagementDeviceOptions {
  native: VmgmtNative;
  name: string;
  socketPath: string;
  geometry?: Partial<GeometryOptions>;
  services?: readonly MessageService[];
  log: CoreLogger;
}

export class ManagementDevice {
  readonly geometry: Geometry;
  readonly memFd: number;
  readonly core: DeviceCore;
  readonly server: IvshmemServer;
  private buffer: ArrayBuffer | undefined;
  private retry: NodeJS.Immediate | undefined;
  private closed = false;

  private constructor(private readonly opts: ManagementDeviceOptions) {
    const result = computeGeometry({ ...DEFAULT_GEOMETRY, ...opts.geometry });
    if (!result.ok) throw new Error(`invalid management device geometry for ${opts.name}: ${result.reason}`);
    this.geometry = result.geometry;
    const n = opts.native;
    this.memFd = n.memfdCreate(`vmgmt-${opts.name}`, this.geometry.regionSizeBytes);
    try {
      this.buffer = n.mapShared(this.memFd, this.geometry.regionSizeBytes);
      this.server = new IvshmemServer({
        native: n,
        socketPath: opts.socketPath,
        shmFd: this.memFd,
        vectors: this.geometry.vectors,
        onDoorbell: () => this.serve(),
        log: opts.log,
      });
      this.core = DeviceCore.initialize({
        mem: new GuestMemory(this.buffer),
        geometry: this.geometry,
        services: opts.services ?? [pingService],
        notifyGuest: (vector) => this.server.notifyGuest(vector),
        log: opts.log,
      });
    } catch (err) {
      if (this.buffer) n.unmap(this.buffer);
      n.close(this.memFd);
      throw err;
    }
  }

  /** Creates the region and starts listening; start QEMU after this returns. */
  static start(opts: ManagementDeviceOptions): ManagementDevice {
    const device = new ManagementDevice(opts);
    try {
      device.server.listen();
    } catch (err) {
      device.close();
      throw err;
    }
    return device;
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
    if (result.more && !this.retry) {
      this.retry = setImmediate(() => {
        this.retry = undefined;
        this.serve();
      });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retry) clearImmediate(this.retry);
    this.server?.close();
    if (this.buffer) this.opts.native.unmap(this.buffer);
    this.buffer = undefined;
    this.opts.native.close(this.memFd);
  }
}
