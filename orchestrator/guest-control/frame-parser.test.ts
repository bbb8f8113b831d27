import { describe, expect, it } from 'vitest';
import { encodeBase64 } from './base64-codec.js';
import { GuestFrameParser, type GuestFrameEvent } from './frame-parser.js';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** What the guest script writes: BEGIN, base64 wrapped at 76 columns, END. */
function guestFrame(id: string, output: Uint8Array | string, exitCode = 0, encoding = 'base64', sizeBytes?: number): string {
  const bytes = typeof output === 'string' ? ascii(output) : output;
  const b64 = encodeBase64(bytes);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(`${b64.slice(i, i + 76)}\n`);
  return `@@VMGMT BEGIN ${id} ${sizeBytes ?? bytes.length} ${encoding}@@\n${lines.join('')}@@VMGMT END ${id} ${exitCode}@@\n`;
}

function feedAll(parser: GuestFrameParser, chunks: Array<string | Uint8Array>): GuestFrameEvent[] {
  return chunks.flatMap((chunk) => parser.push(typeof chunk === 'string' ? ascii(chunk) : chunk));
}

function splitEvery(data: Uint8Array, sizeBytes: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += sizeBytes) chunks.push(data.slice(i, i + sizeBytes));
  return chunks;
}

describe('GuestFrameParser', () => {
  it('decodes a complete frame with its exit code', () => {
    const events = new GuestFrameParser().push(ascii(guestFrame('ab12-1', 'hello\n', 3)));
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event).toMatchObject({ type: 'result', id: 'ab12-1', exitCode: 3, encoding: 'base64', outputSizeBytes: 6 });
    expect(event?.type === 'result' && text(event.payload)).toBe('hello\n');
  });

  it('decodes an empty output (no body lines)', () => {
    const events = new GuestFrameParser().push(ascii('@@VMGMT BEGIN x-1 0 base64@@\n@@VMGMT END x-1 0@@\n'));
    expect(events).toEqual([
      { type: 'result', id: 'x-1', exitCode: 0, encoding: 'base64', outputSizeBytes: 0, payload: new Uint8Array(0) },
    ]);
  });

  it('gives the same result whatever the chunking, down to one byte at a time', () => {
    const output = new Uint8Array(5000).map((_, i) => (i * 7919) & 0xff);
    const stream = ascii(guestFrame('s-9', output, 0));
    for (const chunkBytes of [1, 2, 3, 5, 76, 77, 1000, stream.length]) {
      const events = feedAll(new GuestFrameParser(), splitEvery(stream, chunkBytes));
      expect(events, `chunks of ${chunkBytes}`).toHaveLength(1);
      const [event] = events;
      expect(event?.type).toBe('result');
      if (event?.type === 'result') expect(event.payload).toEqual(output);
    }
  });

  it('round-trips 1 MiB of output', () => {
    const output = new Uint8Array(1024 * 1024).fill(0x61);
    const stream = ascii(guestFrame('big-1', output));
    const events = feedAll(new GuestFrameParser(), splitEvery(stream, 65536));
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event?.type).toBe('result');
    // Buffer.equals: vitest's deep equality takes seconds on a 1 MiB array.
    if (event?.type === 'result') expect(Buffer.from(event.payload).equals(output)).toBe(true);
  });

  it('skips noise between frames, including lines with @ and a half frame from before the host connected', () => {
    const stream =
      'QUFBQUFB\n' + // tail of a body whose BEGIN was dropped
      'garbage @@ not a marker\n' +
      '\x00\xff\x1b[0m\r\n' +
      'ab12-7 4 dHJ1ZQ==\n' + // the guest tty echoing a host line before it went raw
      guestFrame('n-1', 'ok') +
      'more noise\n';
    const parser = new GuestFrameParser();
    const events = parser.push(ascii(stream));
    expect(events.map((e) => e.type)).toEqual(['result']);
    expect(events[0]?.type === 'result' && text(events[0].payload)).toBe('ok');
    expect(parser.noiseBytes).toBeGreaterThan(30);
  });

  it('reports END without BEGIN as broken (the start was dropped)', () => {
    const events = new GuestFrameParser().push(ascii('QUFB\n@@VMGMT END lost-1 0@@\n'));
    expect(events).toEqual([{ type: 'broken', id: 'lost-1', reason: 'END lost-1 without its BEGIN' }]);
  });

  it('accepts a marker with noise glued in front of it', () => {
    const events = new GuestFrameParser().push(ascii(`xyz${guestFrame('g-1', 'fine')}`));
    expect(events.map((e) => e.type)).toEqual(['result']);
  });

  it('accepts CRLF line ends', () => {
    const events = new GuestFrameParser().push(ascii(guestFrame('c-1', 'crlf output').replaceAll('\n', '\r\n')));
    expect(events[0]?.type === 'result' && text(events[0].payload)).toBe('crlf output');
  });

  it('breaks a frame interrupted by the next BEGIN and still decodes the next frame', () => {
    const first = guestFrame('a-1', 'x'.repeat(200));
    const cut = first.slice(0, first.indexOf('@@VMGMT END'));
    const events = new GuestFrameParser().push(ascii(cut + guestFrame('a-2', 'second')));
    expect(events.map((e) => [e.type, e.id])).toEqual([
      ['broken', 'a-1'],
      ['result', 'a-2'],
    ]);
  });

  it('breaks a frame whose END carries another id', () => {
    const events = new GuestFrameParser().push(ascii('@@VMGMT BEGIN a-1 3 base64@@\nYWJj\n@@VMGMT END a-2 0@@\n'));
    expect(events.map((e) => [e.type, e.id])).toEqual([
      ['broken', 'a-1'],
      ['broken', 'a-2'],
    ]);
  });

  it('breaks a frame whose body has fewer bytes than announced', () => {
    const events = new GuestFrameParser().push(ascii(guestFrame('short-1', 'abc', 0, 'base64', 4)));
    expect(events).toEqual([{ type: 'broken', id: 'short-1', reason: 'body has 3 bytes but BEGIN announced 4' }]);
  });

  it('breaks a frame with invalid base64 or a truncated group', () => {
    const bad = new GuestFrameParser().push(ascii('@@VMGMT BEGIN b-1 3 base64@@\nYW*j\n@@VMGMT END b-1 0@@\n'));
    expect(bad[0]).toMatchObject({ type: 'broken', id: 'b-1' });
    expect(bad[0]?.type === 'broken' && bad[0].reason).toContain('not base64');
    const truncated = new GuestFrameParser().push(ascii('@@VMGMT BEGIN b-2 3 base64@@\nYWJ\n@@VMGMT END b-2 0@@\n'));
    expect(truncated[0]).toMatchObject({ type: 'broken', id: 'b-2' });
  });

  it('passes a gzip+base64 body through without checking its size (the client decompresses)', () => {
    const events = new GuestFrameParser().push(ascii(guestFrame('z-1', 'compressed?', 0, 'gzip+base64', 1_000_000)));
    expect(events[0]).toMatchObject({ type: 'result', encoding: 'gzip+base64', outputSizeBytes: 1_000_000 });
  });

  it('reports REJECT frames', () => {
    expect(new GuestFrameParser().push(ascii('@@VMGMT REJECT r-1 size-mismatch@@\n'))).toEqual([
      { type: 'reject', id: 'r-1', reason: 'size-mismatch' },
    ]);
  });

  it('ignores markers with malformed fields', () => {
    const stream = [
      '@@VMGMT BEGIN bad/id 3 base64@@', // id charset
      '@@VMGMT BEGIN ok-1 -3 base64@@', // size not decimal
      '@@VMGMT BEGIN ok-1 3 rot13@@', // unknown encoding
      '@@VMGMT END ok-1 256@@', // exit code out of range
      '@@VMGMT END ok-1 0 extra@@',
      '@@VMGMT HELLO ok-1 0@@',
      '@@VMGMT END ok-1 0', // no suffix
    ].join('\n');
    expect(new GuestFrameParser().push(ascii(`${stream}\n`))).toEqual([]);
  });

  it('skips an over-long line and breaks the frame it was in', () => {
    const parser = new GuestFrameParser({ maxLineBytes: 100 });
    const longLine = 'Q'.repeat(250);
    const events = feedAll(parser, [
      '@@VMGMT BEGIN l-1 3 base64@@\n',
      longLine.slice(0, 120),
      longLine.slice(120),
      '\n',
      guestFrame('l-2', 'after'),
    ]);
    expect(events.map((e) => [e.type, e.id])).toEqual([
      ['broken', 'l-1'],
      ['result', 'l-2'],
    ]);
  });

  it('breaks a frame whose body exceeds maxPayloadBytes', () => {
    const parser = new GuestFrameParser({ maxPayloadBytes: 1000 });
    const events = parser.push(ascii(guestFrame('p-1', 'y'.repeat(2000)) + guestFrame('p-2', 'small')));
    expect(events.map((e) => [e.type, e.id])).toEqual([
      ['broken', 'p-1'],
      ['broken', 'p-1'], // its END then arrives without a BEGIN
      ['result', 'p-2'],
    ]);
  });

  it('does not keep references to the caller buffers of a partial line', () => {
    const parser = new GuestFrameParser();
    const buffer = ascii('@@VMGMT BEGIN k-1 2 base64@@\naG');
    const events = parser.push(buffer);
    buffer.fill(0x21); // the caller reuses its buffer
    events.push(...parser.push(ascii('k=\n@@VMGMT END k-1 0@@\n')));
    expect(events[0]?.type === 'result' && text(events[0].payload)).toBe('hi');
  });
});
