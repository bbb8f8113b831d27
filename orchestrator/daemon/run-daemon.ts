// `vmgmt daemon`: the long-running process. SIGTERM/SIGINT stop the daemon and leave VMs running, like
// libvirtd; a restarted daemon re-attaches to them, management devices included. SIGHUP reloads the config
// file (daemon-config.ts).
import { existsSync, mkdirSync } from 'node:fs';
import { loadNative } from '../../device-backend/native/index.js';
import { startApiServer } from '../api/api-server.js';
import { ApiEventHub } from '../api/event-hub.js';
import { ChatControl } from './chat-control.js';
import { configSource, LiveDaemonConfig, type DaemonConfigOverrides } from './daemon-config.js';
import { createLogger, type Logger } from './logger.js';
import { lockStateDir } from './state-lock.js';
import { VmManager } from './vm-manager.js';

import { startObserve } from '../observe/start-observe.js';
import type { ObserveServer } from '../observe/observe-server.js';
import { feedStatsRecords } from '../observe/stats-feed.js';
import { figuresList, managerSource } from '../observe/vm-figures.js';
import type { DashboardInfo } from '../api/api-contract.js';
import { VmgmtError } from './vmgmt-error.js';

export { DEFAULT_CONFIG_PATH, DEFAULT_RUNTIME_DIR, DEFAULT_STATE_DIR } from './daemon-config.js';

export interface DaemonOptions {
  /** The config file (--config): must exist. Default /etc/vmgmt/config.json, where a missing file means every default. */
  configPath?: string;
  /** Flags over the config file. */
  stateDir?: string;
  runtimeDir?: string;
  socketPath?: string;
  /** `--cluster nats://HOST:PORT`: cluster mode with this broker (the config's cluster section gives the credentials). */
  cluster?: string;
  /** Resolves to stop the daemon; default: the first SIGTERM or SIGINT. */
  until?: Promise<unknown>;
  /** Default: JSON lines on stderr at the config's logLevel. */
  log?: Logger;
}

/** Throws VmgmtError INVALID_CONFIG, before anything starts, when the config file is missing or wrong. */
export async function runDaemon(opts: DaemonOptions = {}): Promise<void> {
  const overrides: DaemonConfigOverrides = {
    ...(opts.stateDir === undefined ? {} : { stateDir: opts.stateDir }),
    ...(opts.runtimeDir === undefined ? {} : { runtimeDir: opts.runtimeDir }),
    ...(opts.socketPath === undefined ? {} : { socketPath: opts.socketPath }),
    ...(opts.cluster === undefined ? {} : { clusterUrl: opts.cluster }),
  };
  const source = configSource(opts.configPath);
  const config = LiveDaemonConfig.load(source, overrides);
  const { stateDir, runtimeDir, socketPath, transfers } = config.current;
  const log = opts.log ?? createLogger({ level: () => config.current.logLevel });
  // From here a SIGTERM or SIGINT stops the daemon whatever it is doing, and only after what has started is
  // undone (socket, lock): a stop during start-up leaves nothing behind.
  const stop = stopRequest(opts.until);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
  const native = loadNative();
  const lock = lockStateDir(native, stateDir);

  // A bug in one VM's handling must not take the others down silently. A rejected promise nobody awaited is
  // logged and the daemon goes on; an exception that unwound the stack leaves unknown state, so the daemon
  // logs it and exits (systemd restarts it, and the new daemon re-attaches the VMs, which kept running).
  const onRejection = (reason: unknown): void => log.error('unhandled promise rejection (a bug: please report it)', { error: reason instanceof Error ? reason.stack : String(reason) });
  const onException = (err: Error): void => {
    log.error('uncaught exception: the daemon exits; VMs keep running and are re-attached on restart', { error: err.stack });
    log.flush();
    process.exit(70);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);

  let manager: VmManager | undefined;
  let chat: ChatControl | undefined;
  let api: Awaited<ReturnType<typeof startApiServer>> | undefined;
  let observe: ObserveServer | undefined;
  let stopStatsFeed: (() => void) | undefined;
  const onHangup = (): void => void config.reload(log);
  try {
    // The API's event stream: chat presence and messages to `host`, VM state changes, stats records,
    // copies. Ids start at the start time in µs, so they grow across daemon restarts (a resume with an id
    // of an earlier daemon is told it missed events).
    const events = new ApiEventHub({ firstId: Date.now() * 1000 });
    manager = new VmManager({
      stateDir,
      runtimeDir,
      native,
      log,
      config,
      onHostChatMessage: ChatControl.hostMessageHandler(events),
      onLifecycle: (change) => events.publish('vm.state', change),
      onTransfer: (notice) => events.publish('transfer', notice),
    });
    const vms = manager;
    stopStatsFeed = feedStatsRecords(vms.statsHub, vms, events);
    chat = new ChatControl({
      hub: vms.chatHub,
      events,
      log: log.child({ service: 'chat-api' }),
      vmGroup: (vm) => {
        const found = vms.list().some((v) => v.name === vm);
        return found ? { exists: true, group: vms.inspect(vm).definition.chatGroup } : { exists: false };
      },
      vmState: (vm) => vms.list().find((v) => v.name === vm)?.state,
    });
    // The metrics and dashboard listener (config metrics): a port that cannot be bound is logged and the
    // daemon runs without it; `vmgmt dashboard` says why.
    const figures = managerSource(manager);
    const observeUp = await startObserve({ config: config.current, manager, chat, events, figures, log });
    observe = observeUp.server;
    const dashboardInfo = (): DashboardInfo => {
      if (observeUp.server) return observeUp.server.info();
      throw new VmgmtError('NOT_FOUND', observeUp.why, {});
    };
    api = await startApiServer({
      events,
      chat,
      socketPath,
      manager,
      log,
      transferDir: transfers.transferDir,
      maxPullBytes: () => config.current.transfers.maxPullBytes,
      figures: () => figuresList(figures),
      dashboard: dashboardInfo,
    });
    log.info('vmgmt daemon started', {
      pid: process.pid,
      config: existsSync(source.path) ? source.path : `${source.path} (none: defaults)`,
      stateDir,
      runtimeDir,
      socket: socketPath,
    });
    process.on('SIGHUP', onHangup);
    if (manager.cluster) {
      log.info('cluster mode: connecting to the broker', { url: config.current.cluster?.url, host: manager.cluster.host });
      manager.cluster.start();
    }
    if (!stop.requested) {
      await manager.recoverAll();
      if (!stop.requested) manager.scheduler.start();
      if (!stop.requested) log.info('ready', { vms: manager.list().length });
    }
    await stop.promise;
    log.info('stopping the daemon; VMs keep running and are re-attached by the next daemon');
  } finally {
    process.off('SIGHUP', onHangup);
    await api?.close();
    await observe?.close();
    stopStatsFeed?.();
    chat?.close();
    await manager?.cluster?.close();
    manager?.scheduler.stop();
    manager?.detachAll();
    await manager?.calcPrograms.close();
    lock.release();
    stop.dispose();
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    log.info('daemon stopped');
    log.flush();
  }
}

interface StopRequest {
  readonly promise: Promise<void>;
  readonly requested: boolean;
  dispose(): void;
}

/** The first SIGTERM or SIGINT (or `until`), as a promise and a flag that start-up steps can look at. */
function stopRequest(until?: Promise<unknown>): StopRequest {
  let requested = false;
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  const onSignal = (): void => {
    requested = true;
    resolve();
  };
  if (until) void until.then(onSignal, onSignal);
  else {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return {
    promise,
    get requested() {
      return requested;
    },
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
