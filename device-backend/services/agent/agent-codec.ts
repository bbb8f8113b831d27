// AGENT_COPY payloads, core → guest. Pure.
import { AGENT_COPY_DIRECTION, AGENT_COPY_REQ, MSG_HEADER } from '../../layout/wire-layout.js';
import type { TransferDirection } from './host-transfers.js';

export interface AgentCopyRequest {
  direction: TransferDirection;
  /** The one-off transfer path the agent opens through the file-mode requests of its channel. */
  hostPath: string;
  /** Absolute path in the guest. */
  guestPath: string;
}

export type Encoded = { ok: true; payload: Uint8Array } | { ok: false; reason: string };

/** The payload for one ring slot of slotSizeBytes: struct, host path, guest path. */
export function encodeAgentCopy(req: AgentCopyRequest, slotSizeBytes: number): Encoded {
  const enc = new TextEncoder();
  const host = enc.encode(req.hostPath);
  const guest = enc.encode(req.guestPath);
  const room = slotSizeBytes - MSG_HEADER.sizeBytes - AGENT_COPY_REQ.sizeBytes;
  if (host.byteLength + guest.byteLength > room) {
    return { ok: false, reason: `guest path of ${guest.byteLength} bytes is too long for one message: at most ${room - host.byteLength} bytes with ${slotSizeBytes}-byte ring slots` };
  }
  const payload = new Uint8Array(AGENT_COPY_REQ.sizeBytes + host.byteLength + guest.byteLength);
  const dv = new DataView(payload.buffer);
  dv.setUint32(AGENT_COPY_REQ.offsets.direction, req.direction === 'to-guest' ? AGENT_COPY_DIRECTION.TO_GUEST : AGENT_COPY_DIRECTION.FROM_GUEST, true);
  dv.setUint32(AGENT_COPY_REQ.offsets.host_path_len, host.byteLength, true);
  dv.setUint32(AGENT_COPY_REQ.offsets.guest_path_len, guest.byteLength, true);
  payload.set(host, AGENT_COPY_REQ.sizeBytes);
  payload.set(guest, AGENT_COPY_REQ.sizeBytes + host.byteLength);
  return { ok: true, payload };
}
