// QMP framing: QEMU writes one JSON object per line ("...}\r\n"). Bytes arrive in arbitrary chunks:
// a message may be split anywhere (even inside a UTF-8 sequence) and one chunk may hold several messages.
// Pure: no I/O, fed with bytes, returns decoded values.

export const QMP_MAX_LINE_CHARS = 16 * 1024 * 1024;

export type QmpFrame =
  | { ok: true; value: unknown }
  | { ok: false; code: 'INVALID_JSON'; line: string; reason: string }
  | { ok: false; code: 'LINE_TOO_LONG'; lengthChars: number; maxLineChars: number };

export class QmpFramer {
  readonly #maxLineChars: number;
  #decoder = new TextDecoder('utf-8');
  #pending = '';
  #discarding = false;

  constructor(opts: { maxLineChars?: number } = {}) {
    this.#maxLineChars = opts.maxLineChars ?? QMP_MAX_LINE_CHARS;
  }

  /** Feeds one chunk; returns every frame completed by it, in order. */
  push(chunk: Uint8Array): QmpFrame[] {
    const text = this.#decoder.decode(chunk, { stream: true });
    const frames: QmpFrame[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const line = this.#pending + text.slice(start, nl);
      this.#pending = '';
      start = nl + 1;
      if (this.#discarding) {
        this.#discarding = false;
        continue;
      }
      const frame = decodeLine(line);
      if (frame) frames.push(frame);
    }
    if (!this.#discarding) this.#pending += text.slice(start);
    if (this.#pending.length > this.#maxLineChars) {
      frames.push({
        ok: false,
        code: 'LINE_TOO_LONG',
        lengthChars: this.#pending.length,
        maxLineChars: this.#maxLineChars,
      });
      this.#pending = '';
      this.#discarding = true;
    }
    return frames;
  }

  /** Bytes received after the last newline (a message cut off by a closed connection). */
  get pendingText(): string {
    return this.#pending;
  }
}

function decodeLine(rawLine: string): QmpFrame | undefined {
  const line = rawLine.trim();
  if (line === '') return undefined;
  try {
    return { ok: true, value: JSON.parse(line) as unknown };
  } catch (err) {
    return { ok: false, code: 'INVALID_JSON', line, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Encodes one command as a QMP line. */
export function encodeQmpCommand(command: string, args: Record<string, unknown> | undefined, id: string | number): string {
  const message: Record<string, unknown> = { execute: command };
  if (args !== undefined) message['arguments'] = args;
  message['id'] = id;
  return `${JSON.stringify(message)}\n`;
}
