// A VM booted from the test image with its management device served in this process, started through the
// daemon's own launcher (launch-vm.ts): the unit the demo, the benchmark and the device integration tests
// work with. The daemon manages VMs the same way, persistently.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import type { GeometryOptions } from '../../device-backend/layout/geometry.js';
import { ManagementDevice, type ServiceSnapshotStore } from '../../device-backend/management-device.js';
import { DEFAULT_FILE_LIMITS, type FileRootConfig } from '../../device-backend/services/file/file-root-config.js';
import type { FileService } from '../../device-backend/services/file/file-service.js';
import type { AgentService } from '../../device-backend/services/agent/agent-service.js';
import type { AgentUpdateService } from '../../device-backend/services/agent/agent-update.js';
import { loadNative } from '../../device-backend/native/index.js';
import type { ChatAttachment } from '../../device-backend/services/device-services.js';
import type { ChatService } from '../../device-backend/services/chat/chat-service.js';
import type { CalcCatalog } from '../../device-backend/services/calc/calc-programs.js';
import { GuestControlClient } from '../guest-control/guest-control-client.js';
import { hostCacheDir, type AccelDecision, type AccelRequest } from '../qemu/accel-probe.js';
import type { QemuProcess } from '../qemu/qemu-process.js';
import { launchVm, type VmBoot } from './launch-vm.js';
import type { ExecService } from '../../device-backend/services/exec/exec-service.js';

export interface DeviceVmOptions {
  name: string;
  accel?: AccelRequest;
  memoryMiB?: number;
  /** Default: the launcher's (TCG_DEFAULT_CPU_MODEL under TCG). */
  cpuModel?: string;
  cpus?: number;
  geometry?: Partial<GeometryOptions>;
  log?: CoreLogger;
  readyTimeoutMs?: number;
  /** Where the KVM self-probe caches its answer. */
  cacheDir?: string;
  /** The VM's host file root for the file mode (limits default to DEFAULT_FILE_LIMITS). */
  files?: Partial<FileRootConfig> & { root: string };
  /** A chat hub shared with other VMs (one object for all of them, as in the daemon) and this VM's group. */
  chat?: ChatAttachment;
  /** Where the services' snapshots go (as the daemon keeps them), for tests that re-attach a new core. */
  snapshots?: ServiceSnapshotStore;
  /** What the VM may calculate (CalcPrograms.catalogFor); default the built-ins. */
  calc?: CalcCatalog;
  /** Another image or kernel command line than the test image's (the benchmarks' peer images). */
  boot?: VmBoot;
  /** More QEMU arguments (see VmLaunchSpec.extraArgs). */
  extraArgs?: string[];
}

export interface DeviceVm {
  readonly name: string;
  readonly runDir: string;
  readonly accel: AccelDecision;
  readonly device: ManagementDevice;
  readonly files: FileService;
  readonly agent: AgentService;
  /** The agent's version (AGENT_HELLO) and the driver update in place. */
  readonly agentUpdate: AgentUpdateService;
  /** The VM's chat service, when it was started with a hub. */
  readonly chat: ChatService | undefined;
  /** `vmgmt vm exec` through the guest agent. */
  readonly exec: ExecService;
  readonly qemu: QemuProcess;
  readonly control: GuestControlClient;
  /** From starting QEMU to the guest answering on its control channel. */
  readonly bootToReadyMs: number;
  /** Closes the management core (socket, eventfds, region mapping) while the VM keeps running. */
  stopCore(): void;
  /** Stops QEMU and removes every socket, region and file this VM created. Safe to call twice. */
  close(): Promise<void>;
}

export async function startDeviceVm(opts: DeviceVmOptions): Promise<DeviceVm> {
  const runDir = mkdtempSync(path.join(tmpdir(), `vmgmt-${opts.name}-`));
  const log = opts.log ?? silentLogger;
  let device: ManagementDevice | undefined;
  let qemu: QemuProcess | undefined;
  let control: GuestControlClient | undefined;
  const cleanup = async (): Promise<void> => {
    control?.close();
    try {
      await qemu?.shutdown({ timeoutMs: 5_000 });
    } finally {
      device?.close();
      rmSync(runDir, { recursive: true, force: true });
    }
  };
  try {
    const launched = await launchVm(
      {
        name: opts.name,
        uuid: randomUUID(),
        accel: opts.accel ?? 'auto',
        memoryMiB: opts.memoryMiB ?? 256,
        ...(opts.cpuModel ? { cpuModel: opts.cpuModel } : {}),
        cpus: opts.cpus ?? 1,
        ...(opts.geometry ? { geometry: opts.geometry } : {}),
        ...(opts.files ? { files: { ...DEFAULT_FILE_LIMITS, readOnly: false, ...opts.files } } : {}),
        ...(opts.chat ? { chat: opts.chat } : {}),
        ...(opts.calc ? { calc: opts.calc } : {}),
        ...(opts.boot ? { boot: opts.boot } : {}),
        ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
        paths: {
          runDir,
          qmpSocket: path.join(runDir, 'qmp.sock'),
          consoleLog: path.join(runDir, 'console.log'),
          controlSocket: path.join(runDir, 'control.sock'),
          ivshmemSocket: path.join(runDir, 'ivshmem.sock'),
        },
        cacheDir: opts.cacheDir ?? hostCacheDir(),
      },
      { native: loadNative(), log, ...(opts.snapshots ? { snapshots: opts.snapshots } : {}) },
    );
    const { accel } = launched;
    device = launched.device;
    qemu = launched.qemu;
    const { files, agent, chat, agentUpdate, exec } = launched.services;
    const startedAt = launched.qemuStartedAtMs;
    control = await GuestControlClient.connect(path.join(runDir, 'control.sock'), { timeoutMs: 10_000 });
    await control.waitReady({ timeoutMs: opts.readyTimeoutMs ?? 60_000 });
    const bootToReadyMs = performance.now() - startedAt;
    const started = { device: launched.device, qemu: launched.qemu, control, files, agent, agentUpdate, chat, exec };
    let closing: Promise<void> | undefined;
    return {
      name: opts.name,
      runDir,
      accel,
      ...started,
      bootToReadyMs,
      stopCore: () => started.device.close(),
      close: () => (closing ??= cleanup()),
    };
  } catch (err) {
    await cleanup().catch(() => {});
    throw err;
  }
}
