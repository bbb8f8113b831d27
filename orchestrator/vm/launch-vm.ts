// The one way a VM is started with its management device: the daemon, the demo, the benchmark and the
// integration tests all come through here, so each of them exercises the same wiring (services, device,
// QEMU arguments). What happens around it (state, cgroups, restarts; a guest control client) is theirs.
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { DEFAULT_CORE_LOG_LIMIT, rateLimitedLogger } from '../../device-backend/core/rate-limited-logger.js';
import type { GeometryOptions } from '../../device-backend/layout/geometry.js';
import { ManagementDevice, type ServiceSnapshotStore } from '../../device-backend/management-device.js';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import { type ChatAttachment, type DeviceServices, deviceServices } from '../../device-backend/services/device-services.js';
import type { FileRootConfig } from '../../device-backend/services/file/file-root-config.js';
import type { StatsHub } from '../../device-backend/services/stats/stats-hub.js';
import type { CalcCatalog } from '../../device-backend/services/calc/calc-programs.js';
import { type AccelDecision, type AccelRequest, resolveAccel } from '../qemu/accel-probe.js';
import type { QemuVmSpec } from '../qemu/qemu-args.js';
import { type QemuProcess, startQemu } from '../qemu/qemu-process.js';
import { attachTapToBridge, checkBridge } from './bridge-attach.js';
import { testImage } from './test-image.js';
import { type NetworkDefinition, qemuNetwork } from './vm-network.js';

export type VmBoot = Pick<QemuVmSpec, 'kernelPath' | 'initrdPath' | 'append' | 'disk'>;

export interface VmLaunchPaths {
  runDir: string;
  qmpSocket: string;
  consoleLog: string;
  /** ttyS0 as a socket too (`vmgmt vm console`). */
  consoleSocket?: string;
  controlSocket: string;
  ivshmemSocket: string;
  /** Default: qemu.log in runDir. */
  qemuLog?: string;
}

/**
 * The guest CPU under TCG: QEMU's `max` without ERMS and FSRM. With them the guest kernel clears and copies
 * pages with `rep movsb/stosb`, which QEMU 7.2's TCG runs slowly (docs/decisions/cpu-model.md).
 */
export const TCG_DEFAULT_CPU_MODEL = 'max,erms=off,fsrm=off';

export interface VmLaunchSpec {
  name: string;
  uuid: string;
  accel: AccelRequest;
  /** Default: `host` under KVM, TCG_DEFAULT_CPU_MODEL under TCG. */
  cpuModel?: string;
  memoryMiB: number;
  cpus: number;
  /** Default: the test image. */
  boot?: VmBoot;
  geometry?: Partial<GeometryOptions>;
  /** The VM's host root for the file mode; without one the file mode answers NO_FILE_ROOT. */
  files?: FileRootConfig;
  /** The daemon's chat hub and the VM's chatGroup; without it the VM has no chat mode. */
  chat?: ChatAttachment;
  /** The daemon's stats hub; without it the VM has no stats mode. */
  stats?: StatsHub;
  /** The calculation functions this VM may call (the daemon's programs for it); default the built-ins. */
  calc?: CalcCatalog;
  paths: VmLaunchPaths;
  /** The VM's NIC (vm-network.ts); default none. */
  network?: NetworkDefinition;
  /** Where the KVM self-probe caches its answer. */
  cacheDir: string;
  /** More QEMU arguments (the benchmark's virtio-9p share and qemu-ga port); not part of a VM definition. */
  extraArgs?: string[];
}

export interface VmLaunchDeps {
  native: VmgmtNative;
  log: CoreLogger;
  snapshots?: ServiceSnapshotStore;
}

export interface LaunchedVm {
  accel: AccelDecision;
  device: ManagementDevice;
  services: DeviceServices;
  qemu: QemuProcess;
  /** performance.now() just before QEMU was started (boot times count from here). */
  qemuStartedAtMs: number;
}

/**
 * The services for one device of a VM; the daemon builds the same list when it re-attaches. Their log is
 * bounded like the core's: every refusal is a line, and a guest can cause refusals as fast as it likes.
 */
export function vmServices(files: FileRootConfig | undefined, deps: Pick<VmLaunchDeps, 'native' | 'log'>, chat?: ChatAttachment, stats?: StatsHub, calc?: CalcCatalog): DeviceServices {
  const log = rateLimitedLogger(deps.log, { ...DEFAULT_CORE_LOG_LIMIT, nowMs: () => performance.now() });
  return deviceServices({ native: deps.native, ...(files ? { files } : {}), log, ...(chat ? { chat } : {}), ...(stats ? { stats } : {}), ...(calc ? { calc } : {}) });
}

export function testImageBoot(): VmBoot {
  const image = testImage();
  return { kernelPath: image.kernelPath, initrdPath: image.initrdPath, append: image.append };
}

/** Resolves the accelerator, serves the device, starts QEMU on it. On failure nothing is left running. */
export async function launchVm(spec: VmLaunchSpec, deps: VmLaunchDeps): Promise<LaunchedVm> {
  const image = testImage();
  const accel = await resolveAccel(spec.accel, {
    kernelPath: image.kernelPath,
    initrdPath: image.initrdPath,
    cacheDir: spec.cacheDir,
    onProbing: (message) => deps.log.info(message),
  });
  if (spec.accel === 'auto') deps.log.info(`accelerator ${accel.accel}`, { reason: accel.reason });
  const network = spec.network ?? { mode: 'none' };
  if (network.mode === 'bridge') checkBridge(network.bridge);
  const nic = qemuNetwork(spec.name, network);
  const services = vmServices(spec.files, deps, spec.chat, spec.stats, spec.calc);
  const device = ManagementDevice.start({
    native: deps.native,
    name: spec.name,
    socketPath: spec.paths.ivshmemSocket,
    ...(spec.geometry ? { geometry: spec.geometry } : {}),
    services: services.services,
    ...(deps.snapshots ? { snapshots: deps.snapshots } : {}),
    log: deps.log,
  });
  try {
    const qemuStartedAtMs = performance.now();
    const qemu = await startQemu(
      {
        name: spec.name,
        uuid: spec.uuid,
        accel: accel.accel,
        memoryMiB: spec.memoryMiB,
        cpus: spec.cpus,
        cpuModel: spec.cpuModel ?? (accel.accel === 'kvm' ? 'host' : TCG_DEFAULT_CPU_MODEL),
        ...(spec.boot ?? testImageBoot()),
        qmpSocketPath: spec.paths.qmpSocket,
        consoleLogPath: spec.paths.consoleLog,
        ...(spec.paths.consoleSocket ? { consoleSocketPath: spec.paths.consoleSocket } : {}),
        controlSocketPath: spec.paths.controlSocket,
        ivshmem: { serverSocketPath: spec.paths.ivshmemSocket, vectors: device.geometry.vectors },
        ...(nic ? { network: nic } : {}),
        ...(spec.extraArgs ? { extraArgs: spec.extraArgs } : {}),
      },
      { runDir: spec.paths.runDir, ...(spec.paths.qemuLog ? { logPath: spec.paths.qemuLog } : {}) },
    );
    if (network.mode === 'bridge' && nic?.kind === 'tap') {
      try {
        await attachTapToBridge(nic.ifname, network.bridge);
      } catch (err) {
        await qemu.kill().catch(() => {});
        throw err;
      }
    }
    return { accel, device, services, qemu, qemuStartedAtMs };
  } catch (err) {
    device.close(`VM ${spec.name} failed to start`);
    throw err;
  }
}
