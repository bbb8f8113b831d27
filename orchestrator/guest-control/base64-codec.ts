// Standard base64 (RFC 4648, '+' '/' and '=' padding) over bytes, with a streaming decoder so a
// frame body can be decoded line by line as it arrives. Node's Buffer does the coding; Buffer skips
// characters it does not know and accepts padding anywhere, so the decoder checks the text strictly
// first and hands Buffer only whole, valid groups of four. No I/O.

const PAD = 0x3d; // '='

const IS_BASE64 = (() => {
  const table = new Uint8Array(256);
  for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') table[ch.charCodeAt(0)] = 1;
  return table;
})();

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export type Base64DecodeResult = { ok: true; bytes: Uint8Array } | { ok: false; reason: string };

/**
 * Decodes base64 text that arrives in pieces (e.g. 76-column lines). Groups of four characters may
 * straddle pieces; padding is accepted only in the last group, checked by finish().
 */
export class Base64StreamDecoder {
  /** Characters of the group still open when the last piece ended (0 to 3). */
  #carry = new Uint8Array(0);
  #padded = false;

  /** Decodes `text` (ASCII bytes, no whitespace). Returns the bytes completed by this piece. */
  push(text: Uint8Array): Base64DecodeResult {
    const pending = new Uint8Array(this.#carry.length + text.length);
    pending.set(this.#carry);
    pending.set(text, this.#carry.length);
    let groupLength = this.#carry.length;
    let padInGroup = groupLength > 0 && this.#carry[groupLength - 1] === PAD;
    for (let i = this.#carry.length; i < pending.length; i++) {
      const ch = pending[i]!;
      if (this.#padded) return { ok: false, reason: 'data after base64 padding' };
      if (ch === PAD) {
        if (groupLength < 2) return { ok: false, reason: `base64 padding at group offset ${groupLength}` };
        padInGroup = true;
      } else {
        if (IS_BASE64[ch] !== 1) return { ok: false, reason: `byte 0x${ch.toString(16).padStart(2, '0')} is not base64` };
        if (padInGroup) return { ok: false, reason: 'base64 data after padding inside a group' };
      }
      groupLength += 1;
      if (groupLength === 4) {
        if (padInGroup) this.#padded = true;
        groupLength = 0;
        padInGroup = false;
      }
    }
    const whole = pending.length - groupLength;
    this.#carry = pending.slice(whole);
    const decoded = Buffer.from(Buffer.from(pending.buffer, 0, whole).toString('latin1'), 'base64');
    return { ok: true, bytes: new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength) };
  }

  /** Call after the last piece: fails if a group is incomplete. */
  finish(): Base64DecodeResult {
    if (this.#carry.length !== 0) {
      return { ok: false, reason: `base64 text ends inside a group (${this.#carry.length} of 4 characters)` };
    }
    return { ok: true, bytes: new Uint8Array(0) };
  }
}

export function decodeBase64(text: string): Base64DecodeResult {
  const decoder = new Base64StreamDecoder();
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    bytes[i] = code > 0xff ? 0x00 : code; // 0x00 is rejected as not base64
  }
  const body = decoder.push(bytes);
  if (!body.ok) return body;
  const end = decoder.finish();
  return end.ok ? body : end;
}
