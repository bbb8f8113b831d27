// Standard base64 (RFC 4648, '+' '/' and '=' padding) over bytes, with a streaming decoder so a
// frame body can be decoded line by line as it arrives. No I/O and no Buffer, so it stays pure.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PAD = 0x3d; // '='
const INVALID = 0xff;

const DECODE_TABLE = (() => {
  const table = new Uint8Array(256).fill(INVALID);
  for (let i = 0; i < ALPHABET.length; i++) table[ALPHABET.charCodeAt(i)] = i;
  return table;
})();

export function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + '==';
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + '=';
  }
  return out;
}

export type Base64DecodeResult = { ok: true; bytes: Uint8Array } | { ok: false; reason: string };

/**
 * Decodes base64 text that arrives in pieces (e.g. 76-column lines). Groups of four characters may
 * straddle pieces; padding is accepted only in the last group, checked by finish().
 */
export class Base64StreamDecoder {
  readonly #carry = new Uint8Array(4);
  #carryLength = 0;
  #padded = false;

  /** Decodes `text` (ASCII bytes, no whitespace). Returns the bytes completed by this piece. */
  push(text: Uint8Array): Base64DecodeResult {
    const out = new Uint8Array(Math.floor((this.#carryLength + text.length) / 4) * 3);
    let outLength = 0;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (this.#padded) return { ok: false, reason: 'data after base64 padding' };
      if (ch === PAD) {
        if (this.#carryLength < 2) return { ok: false, reason: `base64 padding at group offset ${this.#carryLength}` };
        this.#carry[this.#carryLength++] = PAD;
      } else {
        const v = DECODE_TABLE[ch]!;
        if (v === INVALID) return { ok: false, reason: `byte 0x${ch.toString(16).padStart(2, '0')} is not base64` };
        if (this.#carryLength > 0 && this.#carry[this.#carryLength - 1] === PAD) {
          return { ok: false, reason: 'base64 data after padding inside a group' };
        }
        this.#carry[this.#carryLength++] = ch;
      }
      if (this.#carryLength === 4) {
        outLength += this.#flushGroup(out, outLength);
      }
    }
    return { ok: true, bytes: out.subarray(0, outLength) };
  }

  /** Call after the last piece: fails if a group is incomplete. */
  finish(): Base64DecodeResult {
    if (this.#carryLength !== 0) {
      return { ok: false, reason: `base64 text ends inside a group (${this.#carryLength} of 4 characters)` };
    }
    return { ok: true, bytes: new Uint8Array(0) };
  }

  #flushGroup(out: Uint8Array, at: number): number {
    const c = this.#carry;
    const a = DECODE_TABLE[c[0]!]!;
    const b = DECODE_TABLE[c[1]!]!;
    this.#carryLength = 0;
    if (c[2] === PAD) {
      this.#padded = true;
      out[at] = (a << 2) | (b >> 4);
      return 1;
    }
    const d2 = DECODE_TABLE[c[2]!]!;
    if (c[3] === PAD) {
      this.#padded = true;
      out[at] = (a << 2) | (b >> 4);
      out[at + 1] = ((b & 15) << 4) | (d2 >> 2);
      return 2;
    }
    const d3 = DECODE_TABLE[c[3]!]!;
    out[at] = (a << 2) | (b >> 4);
    out[at + 1] = ((b & 15) << 4) | (d2 >> 2);
    out[at + 2] = ((d2 & 3) << 6) | d3;
    return 3;
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
