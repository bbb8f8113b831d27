// Splits an NDJSON byte stream into lines, whatever the chunk boundaries (also inside a UTF-8 character).
// Blank lines are skipped and a trailing \r is dropped. Pure.

export const MAX_NDJSON_LINE_CHARS = 1024 * 1024;

export type NdjsonChunk = { ok: true; lines: string[] } | { ok: false; reason: string };

export class NdjsonLineSplitter {
  readonly #decoder = new TextDecoder('utf-8');
  #rest = '';

  constructor(readonly maxLineChars: number = MAX_NDJSON_LINE_CHARS) {}

  /** The lines this chunk completes. */
  push(chunk: Uint8Array): NdjsonChunk {
    return this.#split(this.#rest + this.#decoder.decode(chunk, { stream: true }), false);
  }

  /** The last line when the stream ended without a newline after it. */
  end(): NdjsonChunk {
    return this.#split(this.#rest + this.#decoder.decode(), true);
  }

  #split(text: string, atEnd: boolean): NdjsonChunk {
    const parts = text.split('\n');
    this.#rest = atEnd ? '' : (parts.pop() ?? '');
    if (this.#rest.length > this.maxLineChars || parts.some((l) => l.length > this.maxLineChars)) {
      return { ok: false, reason: `an NDJSON line is longer than ${this.maxLineChars} characters` };
    }
    const lines = parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l.trim() !== '');
    return { ok: true, lines };
  }
}
