// The body of an exec answer: frames of [kind u8][length u32 big-endian][payload]. stdout and stderr carry
// the command's bytes as they come; the last frame is exit (JSON, execExitSchema) or error (JSON, the
// API's error body). Pure: the encoder and a byte-fed parser, no I/O.
export const EXEC_FRAME = { STDOUT: 1, STDERR: 2, EXIT: 3, ERROR: 4 } as const;
export type ExecFrameKind = (typeof EXEC_FRAME)[keyof typeof EXEC_FRAME];
export const EXEC_FRAME_HEADER_BYTES = 5;
/** A frame the parser refuses to buffer: the daemon never sends more than one guest buffer per frame. */
export const EXEC_FRAME_MAX_BYTES = 16 * 1024 * 1024;

export function execFrameHeader(kind: ExecFrameKind, lengthBytes: number): Buffer {
  const h = Buffer.allocUnsafe(EXEC_FRAME_HEADER_BYTES);
  h.writeUInt8(kind, 0);
  h.writeUInt32BE(lengthBytes, 1);
  return h;
}

export interface ExecFrame {
  kind: ExecFrameKind;
  payload: Buffer;
}

export type ExecFrameResult = { ok: true; frames: ExecFrame[] } | { ok: false; reason: string };

/** Feeds bytes, returns the whole frames they complete. */
export class ExecFrameParser {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): ExecFrameResult {
    this.pending.push(chunk);
    this.pendingBytes += chunk.byteLength;
    const frames: ExecFrame[] = [];
    let buf = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    let at = 0;
    while (buf.byteLength - at >= EXEC_FRAME_HEADER_BYTES) {
      const kind = buf.readUInt8(at);
      const len = buf.readUInt32BE(at + 1);
      if (kind < EXEC_FRAME.STDOUT || kind > EXEC_FRAME.ERROR) return { ok: false, reason: `unknown exec frame kind ${kind}` };
      if (len > EXEC_FRAME_MAX_BYTES) return { ok: false, reason: `exec frame of ${len} bytes, more than ${EXEC_FRAME_MAX_BYTES}` };
      if (buf.byteLength - at - EXEC_FRAME_HEADER_BYTES < len) break;
      frames.push({ kind: kind as ExecFrameKind, payload: buf.subarray(at + EXEC_FRAME_HEADER_BYTES, at + EXEC_FRAME_HEADER_BYTES + len) });
      at += EXEC_FRAME_HEADER_BYTES + len;
    }
    buf = buf.subarray(at);
    this.pending = buf.byteLength ? [buf] : [];
    this.pendingBytes = buf.byteLength;
    return { ok: true, frames };
  }

  /** Bytes of an unfinished frame (the stream must not end with any). */
  get leftoverBytes(): number {
    return this.pendingBytes;
  }
}
