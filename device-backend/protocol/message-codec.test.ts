import { describe, expect, it } from 'vitest';
import { MSG_HEADER, MSG_RESPONSE_BIT, MSG_TYPE, STATUS } from '../layout/wire-layout.js';
import { decodeMessage, encodeMessage, responseTo } from './message-codec.js';

const SLOT = 256;
function slotWith(fields: { type?: number; flags?: number; length?: number; id?: number; status?: number }, payload = new Uint8Array()): Uint8Array {
  const slot = new Uint8Array(SLOT);
  const dv = new DataView(slot.buffer);
  dv.setUint16(0, fields.type ?? MSG_TYPE.PING, true);
  dv.setUint16(2, fields.flags ?? 0, true);
  dv.setUint32(4, fields.length ?? payload.byteLength, true);
  dv.setUint32(8, fields.id ?? 7, true);
  dv.setInt32(12, fields.status ?? 0, true);
  slot.set(payload, MSG_HEADER.sizeBytes);
  return slot;
}

describe('message codec', () => {
  it('round-trips a message through a slot', () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const bytes = encodeMessage({ type: MSG_TYPE.PING, requestId: 42, status: 0, payload }, SLOT);
    const slot = new Uint8Array(SLOT);
    slot.set(bytes);
    const r = decodeMessage(slot);
    expect(r).toEqual({ ok: true, message: { type: MSG_TYPE.PING, requestId: 42, status: 0, payload } });
  });

  it('decodes a copy: later writes to the slot do not change the message', () => {
    const slot = slotWith({}, new Uint8Array([9, 9]));
    const r = decodeMessage(slot);
    slot[MSG_HEADER.sizeBytes] = 0;
    expect(r.ok && r.message.payload[0]).toBe(9);
  });

  it.each([
    [{ length: SLOT - 16 + 1 }, STATUS.BAD_LENGTH.code],
    [{ length: 0xffffffff }, STATUS.BAD_LENGTH.code],
    [{ flags: 1 }, STATUS.RESERVED_NONZERO.code],
    [{ status: 5 }, STATUS.RESERVED_NONZERO.code],
    [{ type: 0x7777 }, STATUS.UNKNOWN_TYPE.code],
  ])('rejects %o with status %i and keeps the request id', (fields, status) => {
    const r = decodeMessage(slotWith(fields));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.status).toBe(status);
      expect(r.requestId).toBe(7);
      expect(r.reason.length).toBeGreaterThan(3);
    }
  });

  it('responseTo sets the response bit and echoes the id', () => {
    expect(responseTo({ type: MSG_TYPE.PING, requestId: 9 }, 2)).toMatchObject({ type: MSG_TYPE.PING | MSG_RESPONSE_BIT, requestId: 9, status: 2 });
  });

  it('refuses to encode a payload larger than the slot', () => {
    expect(() => encodeMessage({ type: 1, requestId: 1, status: 0, payload: new Uint8Array(SLOT) }, SLOT)).toThrow(/does not fit/);
  });
});
