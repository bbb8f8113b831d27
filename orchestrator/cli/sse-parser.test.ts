import { describe, expect, it } from 'vitest';
import { SseParser } from './sse-parser.js';

const enc = new TextEncoder();

describe('SseParser', () => {
  it('frames across any chunk boundary, skipping comments', () => {
    const text = ': keepalive\n\nid: 1\nevent: stream.open\ndata: {"a":1}\n\nid: 2\r\nevent: chat.message\r\ndata: {"t":"é"}\r\n\r\n';
    const bytes = enc.encode(text);
    for (const step of [1, 2, 7, bytes.length]) {
      const p = new SseParser();
      const frames = [];
      for (let i = 0; i < bytes.length; i += step) frames.push(...p.push(bytes.subarray(i, i + step)));
      expect(frames).toEqual([
        { event: 'stream.open', id: '1', data: '{"a":1}' },
        { event: 'chat.message', id: '2', data: '{"t":"é"}' },
      ]);
    }
  });

  it('joins several data lines', () => {
    expect(new SseParser().push(enc.encode('data: a\ndata: b\n\n'))).toEqual([{ event: 'message', id: undefined, data: 'a\nb' }]);
  });
});
