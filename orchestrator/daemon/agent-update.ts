// `vmgmt agent update` for the daemon: reads the new vmgmt-guest (a host path, or the daemon's own build),
// asks the VM's agent-update service to put it in place and turns its errors into the daemon's. The
// protocol is the service's (device-backend/services/agent/agent-update.ts).
import { open } from 'node:fs/promises';
import path from 'node:path';
import { AGENT_UPDATE_LIMITS } from '../../device-backend/layout/wire-layout.js';
import { AgentUpdateError, type AgentUpdateErrorCode, type AgentUpdateService } from '../../device-backend/services/agent/agent-update.js';
import type { AgentUpdateResult } from '../api/api-contract.js';
import { findRepoRoot } from '../vm/repo-root.js';
import type { Logger } from './logger.js';
import { type VmgmtErrorCode, VmgmtError } from './vmgmt-error.js';

const CODES: Readonly<Record<AgentUpdateErrorCode, VmgmtErrorCode>> = {
  INVALID_REQUEST: 'INVALID_REQUEST',
  AGENT_UNAVAILABLE: 'AGENT_UNAVAILABLE',
  REFUSED: 'GUEST_REFUSED',
  ROLLED_BACK: 'GUEST_REFUSED',
  TIMEOUT: 'TIMEOUT',
  BUSY: 'INVALID_STATE',
};

/** The driver the daemon's test image carries: what `vmgmt agent update` sends without --binary. */
export function defaultGuestBinary(): string {
  return path.join(findRepoRoot(), 'guest-driver', 'build', 'vmgmt-guest');
}

/** Reads a regular file of at most AGENT_UPDATE_LIMITS.MAX_BINARY_BYTES. */
async function readBinary(file: string): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new VmgmtError('INVALID_REQUEST', `cannot open the new guest driver ${file}: ${(err as Error).message}`, { binary: file }, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size === 0 || st.size > AGENT_UPDATE_LIMITS.MAX_BINARY_BYTES) {
      throw new VmgmtError('INVALID_REQUEST', `${file} is not a regular file of 1..${AGENT_UPDATE_LIMITS.MAX_BINARY_BYTES} bytes`, { binary: file, sizeBytes: st.size });
    }
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

export async function agentUpdate(
  name: string,
  updater: AgentUpdateService,
  opts: { binary?: string; sha256?: string; reportInMs?: number; probationMs?: number; tempDir: string },
  log: Logger,
): Promise<AgentUpdateResult> {
  const file = opts.binary ?? defaultGuestBinary();
  const binary = await readBinary(file);
  try {
    const r = await updater.update({
      binary,
      tempDir: opts.tempDir,
      ...(opts.sha256 !== undefined ? { sha256: Buffer.from(opts.sha256, 'hex') } : {}),
      ...(opts.reportInMs !== undefined ? { reportInMs: opts.reportInMs } : {}),
      ...(opts.probationMs !== undefined ? { probationMs: opts.probationMs } : {}),
    });
    log.info(`agent updated ${r.fromVersion ?? '(unknown)'} -> ${r.toVersion}`, { gapMs: r.gapMs, totalMs: Math.round(r.totalMs), binary: file });
    return { name, ...r };
  } catch (err) {
    if (err instanceof AgentUpdateError) {
      log.warn('agent update failed', { code: err.code, error: err.message, binary: file });
      const outcome = err.code === 'ROLLED_BACK' ? 'rolled-back' : err.code === 'REFUSED' ? 'refused' : 'failed';
      throw new VmgmtError(CODES[err.code], err.message, { ...err.details, outcome, binary: file }, { cause: err });
    }
    throw err;
  }
}
