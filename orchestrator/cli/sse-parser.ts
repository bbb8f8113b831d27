// Splits a server-sent events byte stream into frames (`event:`, `id:`, `data:` lines up to a blank line),
// whatever the chunk boundaries. Comments (`: keepalive`) are skipped; several data lines are joined with
// \n, as the SSE spec says. Pure.

export interface SseFrame {
  event: string;
  id: string | undefined;
  data: string;
}

export const MAX_SSE_FRAME_CHARS = 1024 * 1024;

export class SseParser {
  readonly #decoder = new TextDecoder('utf-8');
  #rest = '';
  #event = '';
  #id: string | undefined;
  #data: string[] = [];

  /** The frames this chunk completes; throws when one line is longer than MAX_SSE_FRAME_CHARS. */
  push(chunk: Uint8Array): SseFrame[] {
    const text = this.#rest + this.#decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    this.#rest = lines.pop() ?? '';
    if (this.#rest.length > MAX_SSE_FRAME_CHARS) throw new Error(`an event-stream line is longer than ${MAX_SSE_FRAME_CHARS} characters`);
    const frames: SseFrame[] = [];
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (this.#data.length > 0) frames.push({ event: this.#event || 'message', id: this.#id, data: this.#data.join('\n') });
        this.#event = '';
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.#event = value;
      else if (field === 'data') this.#data.push(value);
      else if (field === 'id') this.#id = value;
    }
    return frames;
  }
}
