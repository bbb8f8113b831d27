// Splits a server-sent events byte stream into frames, whatever the chunk boundaries (as the CLI's
// sse-parser.ts does). Comments (`: keepalive`) are skipped.
export class SseParser {
  #decoder = new TextDecoder('utf-8');
  #rest = '';
  #event = '';
  #id = undefined;
  #data = [];

  /** The frames this chunk completes: [{ event, id, data }]. */
  push(chunk) {
    const lines = (this.#rest + this.#decoder.decode(chunk, { stream: true })).split('\n');
    this.#rest = lines.pop() ?? '';
    const frames = [];
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (this.#data.length) frames.push({ event: this.#event || 'message', id: this.#id, data: this.#data.join('\n') });
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
