// Host-started copies through the guest agent (`vmgmt cp`): the host hands the agent a file under a
// one-off transfer path and asks it, with AGENT_COPY on the agent's channel, to copy it in or out.
import { AGENT_COPY_DIRECTION, AGENT_COPY_REQ, MODE, MSG_HEADER, MSG_TYPE, STATUS } from '../../device-backend/layout/wire-layout.js';
import type { ManagementDevice } from '../../device-backend/management-device.js';
import type { HostTransfers, TransferDirection } from '../../device-backend/services/file/host-transfers.js';
import { VmgmtError } from './vmgmt-error.js';

export interface AgentCopyOptions {
  device: ManagementDevice;
  transfers: HostTransfers;
  direction: TransferDirection;
  /** to-guest: the host file to send (read from); from-guest: the host file to fill (written to). */
  hostFd: number;
  /** to-guest: its size. */
  sizeBytes: number;
  /** from-guest: the most the guest agent may declare (a hostile agent cannot fill the host's disk). */
  maxBytes?: number;
  /** How long to wait for the guest agent to come up (a VM that is still booting). Default 20 s. */
  agentWaitMs?: number;
  guestPath: string;
  timeoutMs: number;
  onProgress?: (movedBytes: number, totalBytes: number) => void;
}

const statusText = (code: number): string => Object.values(STATUS).find((s) => s.code === code)?.text ?? `status ${code}`;

async function agentChannel(device: ManagementDevice, waitMs: number): Promise<number> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const channel = device.core.channelsInMode(MODE.AGENT).at(-1);
    if (channel !== undefined) return channel;
    if (Date.now() >= deadline) {
      throw new VmgmtError('AGENT_UNAVAILABLE', `no guest agent came up in this VM within ${waitMs} ms: start \`vmgmt-guest agent\` in the guest (the test image starts it at boot)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function agentCopy(opts: AgentCopyOptions): Promise<{ bytes: number }> {
  const { device, transfers } = opts;
  const channel = await agentChannel(device, opts.agentWaitMs ?? 20_000);
  if (!opts.guestPath.startsWith('/')) throw new VmgmtError('INVALID_REQUEST', `guest path ${opts.guestPath} must be absolute`);
  const t = transfers.create({
    direction: opts.direction,
    fd: opts.hostFd,
    totalBytes: opts.sizeBytes,
    ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  let outcome = 'failed';
  try {
    const enc = new TextEncoder();
    const host = enc.encode(t.hostPath);
    const guest = enc.encode(opts.guestPath);
    const room = device.geometry.slotSizeBytes - MSG_HEADER.sizeBytes - AGENT_COPY_REQ.sizeBytes;
    if (host.byteLength + guest.byteLength > room) {
      throw new VmgmtError('INVALID_REQUEST', `guest path of ${guest.byteLength} bytes is too long for one message: at most ${room - host.byteLength} bytes with ${device.geometry.slotSizeBytes}-byte ring slots`);
    }
    const payload = new Uint8Array(AGENT_COPY_REQ.sizeBytes + host.byteLength + guest.byteLength);
    const dv = new DataView(payload.buffer);
    dv.setUint32(AGENT_COPY_REQ.offsets.direction, opts.direction === 'to-guest' ? AGENT_COPY_DIRECTION.TO_GUEST : AGENT_COPY_DIRECTION.FROM_GUEST, true);
    dv.setUint32(AGENT_COPY_REQ.offsets.host_path_len, host.byteLength, true);
    dv.setUint32(AGENT_COPY_REQ.offsets.guest_path_len, guest.byteLength, true);
    payload.set(host, AGENT_COPY_REQ.sizeBytes);
    payload.set(guest, AGENT_COPY_REQ.sizeBytes + host.byteLength);

    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VmgmtError('TIMEOUT', `the guest agent did not finish copying ${opts.guestPath} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
    let answer;
    try {
      answer = await Promise.race([device.core.request(channel, MSG_TYPE.AGENT_COPY, payload), timeout]);
    } catch (err) {
      if (err instanceof VmgmtError && err.code === 'TIMEOUT') outcome = 'timed out';
      if (err instanceof VmgmtError) throw err;
      throw new VmgmtError('AGENT_UNAVAILABLE', `the guest agent went away during the copy: ${(err as Error).message}`, {}, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    if (opts.direction === 'from-guest' && answer.status === STATUS.FILE_TOO_LARGE.code) {
      throw new VmgmtError(
        'GUEST_REFUSED',
        `${opts.guestPath} is larger than the host takes: at most ${t.maxBytes} bytes (the daemon's largest pull, or what its transfer directory has free)`,
        { status: answer.status, maxBytes: t.maxBytes },
      );
    }
    if (answer.status !== 0) {
      throw new VmgmtError('GUEST_REFUSED', `the guest agent could not copy ${opts.guestPath}: ${statusText(answer.status)} (status ${answer.status})`, { status: answer.status });
    }
    if (opts.direction === 'from-guest' && !t.committed) {
      throw new VmgmtError('GUEST_REFUSED', `the guest agent reported success but never committed ${opts.guestPath}`);
    }
    outcome = 'done';
    return { bytes: t.movedBytes };
  } finally {
    // Before the caller closes hostFd: from here no guest handle reaches it.
    transfers.end(t, `copy ${outcome}`);
  }
}
