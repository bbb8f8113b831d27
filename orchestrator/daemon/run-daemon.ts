// `vmgmt daemon`: the long-running process. SIGTERM/SIGINT stop the daemon and leave VMs running, like
// libvirtd; a restarted daemon re-attaches to them, management devices included.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { loadNative } from '../../device-backend/native/index.js';
import { startApiServer } from '../api/api-server.js';
import { createLogger, type Logger } from './logger.js';
import { VmManager } from './vm-manager.js';

export const DEFAULT_STATE_DIR = '/var/lib/vmgmt';
export const DEFAULT_RUNTIME_DIR = '/run/vmgmt';

export interface DaemonOptions {
  stateDir?: string;
  runtimeDir?: string;
  socketPath?: string;
  /** Resolves to stop the daemon; default: the first SIGTERM or SIGINT. */
  until?: Promise<unknown>;
  log?: Logger;
}

export async function runDaemon(opts: DaemonOptions = {}): Promise<void> {
  const stateDir = path.resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  const runtimeDir = path.resolve(opts.runtimeDir ?? DEFAULT_RUNTIME_DIR);
  const socketPath = path.resolve(opts.socketPath ?? path.join(runtimeDir, 'vmgmt.sock'));
  const log = opts.log ?? createLogger();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });

  // A bug in one VM's handling must not take the others down silently. A rejected promise nobody awaited is
  // logged and the daemon goes on; an exception that unwound the stack leaves unknown state, so the daemon
  // logs it and exits (systemd restarts it, and the new daemon re-attaches the VMs, which kept running).
  process.on('unhandledRejection', (reason) => log.error('unhandled promise rejection (a bug: please report it)', { error: reason instanceof Error ? reason.stack : String(reason) }));
  process.on('uncaughtException', (err) => {
    log.error('uncaught exception: the daemon exits; VMs keep running and are re-attached on restart', { error: err.stack });
    process.exit(70);
  });

  const manager = new VmManager({ stateDir, runtimeDir, native: loadNative(), log });
  const api = await startApiServer({ socketPath, manager, log, transferDir: path.join(runtimeDir, 'transfers') });
  log.info('vmgmt daemon started', { pid: process.pid, stateDir, runtimeDir, socket: socketPath });
  await manager.recoverAll();
  log.info('ready', { vms: manager.list().length });

  await (opts.until ??
    new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    }));
  log.info('stopping the daemon; VMs keep running and are re-attached by the next daemon');
  await api.close();
  manager.detachAll();
  log.info('daemon stopped');
}
