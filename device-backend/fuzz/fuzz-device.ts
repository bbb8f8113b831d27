// One VM's device in the core fuzz: region, checked memory for the core, plain memory for the guests,
// the services observed, and the shell's scheduling modelled as the daemon does it.
import { silentLogger } from '../core/core-logger.js';
import { DeviceCore, type DeviceCoreOptions } from '../core/device-core.js';
import type { MessageService } from '../core/message-service.js';
import { pingService } from '../core/ping-service.js';
import { checkHeaderGeometry } from '../core/region-header.js';
import { dataSliceOffset, type Geometry } from '../layout/geometry.js';
import { MSG_TYPE } from '../layout/wire-layout.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { VmgmtNative } from '../native/index.js';
import type { Message } from '../protocol/message-codec.js';
import { DEFAULT_FILE_LIMITS } from '../services/file/file-root-config.js';
import { FileService } from '../services/file/file-service.js';
import { AgentService } from '../services/agent/agent-service.js';
import type { HostTransfers } from '../services/agent/host-transfers.js';
import { AccessCheckedMemory } from './access-checked-memory.js';
import type { Tuning } from './core-scenario.js';

interface CoreInternals {
  channels: { index: number; inFlight: number; answers: unknown[]; outbox: unknown[]; outstanding: Map<number, unknown> }[];
}

export class FuzzDevice {
  readonly buffer: ArrayBuffer;
  readonly coreMem: AccessCheckedMemory;
  readonly guestMem: GuestMemory;
  core!: DeviceCore;
  files!: FileService;
  agent!: AgentService;
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

  /** The device's file service, and a new agent service (host transfers reach the guest only in agent mode). */
  private newFiles(): FileService {
    this.files = new FileService({ native: this.native, config: { ...DEFAULT_FILE_LIMITS, root: this.root, readOnly: false }, log: silentLogger });
    this.agent = new AgentService({ native: this.native, log: silentLogger, ...(this.transfers ? { transfers: this.transfers } : {}) });
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
      services: [pingService, files, this.agent].map(observe),
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
    const old = { core: this.core, files: this.files, agent: this.agent };
    // A region the new core would refuse (the guest scribbled over the geometry): the documented refusal,
    // and the old core keeps serving. Checked before a new file service starts, since its start-up sweep
    // would take the temp files of the old one's puts (a real restart has no old daemon left to serve).
    if (checkHeaderGeometry(this.guestMem, this.geometry) !== undefined) {
      this.coreMem.beginPass();
      const refused = this.guard('reattach()', () => {
        try {
          DeviceCore.reattach({ ...this.baseOpts, services: [] });
          return 'accepted';
        } catch (err) {
          return (err as Error).message;
        }
      });
      if (refused === 'accepted') this.fail(`${this.name}: reattach accepted a region whose header geometry does not match`);
      else if (refused !== undefined && !/^cannot re-attach to the region: header field/.test(refused)) this.fail(`${this.name}: reattach threw: ${refused}`);
      return false;
    }
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
      this.agent.close();
      this.files = old.files;
      this.agent = old.agent;
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
