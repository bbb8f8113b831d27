// Byte-level parser for what the guest writes on the control channel: bytes in, events out, no I/O.
//
// The stream is lossy at the edges: QEMU drops serial output while no client is connected, and the
// guest's tty may echo host lines before it switches to raw mode. So everything that is not a
// well-formed frame is skipped, a frame cut short by another marker is reported as `broken`, and the
// parser always resynchronises on the next marker line. Base64 lines never contain '@', so only lines
// with an '@' are looked at as markers.
import { Base64StreamDecoder } from './base64-codec.js';
import {
  COMMAND_ID_PATTERN,
  CONTROL_FRAME_KIND,
  CONTROL_MARKER_PREFIX,
  CONTROL_MARKER_SUFFIX,
  OUTPUT_ENCODING,
  type OutputEncoding,
} from './control-protocol.js';

export type GuestFrameEvent =
  | {
      type: 'result';
      id: string;
      exitCode: number;
      encoding: OutputEncoding;
      /** Size of the command's output before encoding (after decompression for gzip+base64). */
      outputSizeBytes: number;
      /** The base64-decoded body: the output itself, or its gzip stream for gzip+base64. */
      payload: Uint8Array;
    }
  /** The guest could not use the command line (garbled in transit); the command did not run. */
  | { type: 'reject'; id: string; reason: string }
  /** A frame for `id` started or ended but its body was lost or invalid; the command did run. */
  | { type: 'broken'; id: string; reason: string };

export interface FrameParserLimits {
  /** Longer lines are skipped (noise); a frame containing one is broken. Default 64 KiB. */
  maxLineBytes: number;
  /** Largest decoded body accepted; a bigger frame is broken. Default 256 MiB. */
  maxPayloadBytes: number;
}

export const DEFAULT_FRAME_PARSER_LIMITS: FrameParserLimits = {
  maxLineBytes: 64 * 1024,
  maxPayloadBytes: 256 * 1024 * 1024,
};

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const AT_SIGN = 0x40;
const MAX_EXIT_CODE = 255;

type Marker =
  | { kind: typeof CONTROL_FRAME_KIND.BEGIN; id: string; outputSizeBytes: number; encoding: OutputEncoding }
  | { kind: typeof CONTROL_FRAME_KIND.END; id: string; exitCode: number }
  | { kind: typeof CONTROL_FRAME_KIND.REJECT; id: string; reason: string };

type ParserState =
  | { kind: 'idle' }
  | {
      kind: 'in-frame';
      id: string;
      outputSizeBytes: number;
      encoding: OutputEncoding;
      decoder: Base64StreamDecoder;
      chunks: Uint8Array[];
      payloadBytes: number;
    };

export class GuestFrameParser {
  readonly #limits: FrameParserLimits;
  #state: ParserState = { kind: 'idle' };
  #partialLine: Uint8Array[] = [];
  #partialLineBytes = 0;
  #skippingLongLine = false;
  #noiseBytes = 0;

  constructor(limits: Partial<FrameParserLimits> = {}) {
    this.#limits = { ...DEFAULT_FRAME_PARSER_LIMITS, ...limits };
  }

  /** Bytes skipped so far because they were not part of any frame (diagnostics). */
  get noiseBytes(): number {
    return this.#noiseBytes;
  }

  push(chunk: Uint8Array): GuestFrameEvent[] {
    const events: GuestFrameEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.#appendToLine(chunk.subarray(start), events);
        break;
      }
      if (this.#partialLineBytes === 0 && !this.#skippingLongLine) {
        // Fast path: the whole line is in this chunk, no copy needed.
        this.#completeLine(chunk.subarray(start, newline), events);
      } else {
        this.#appendToLine(chunk.subarray(start, newline), events);
        if (this.#skippingLongLine) {
          this.#skippingLongLine = false;
        } else {
          this.#completeLine(this.#takeLine(), events);
        }
      }
      start = newline + 1;
    }
    return events;
  }

  #appendToLine(piece: Uint8Array, events: GuestFrameEvent[]): void {
    if (piece.length === 0) return;
    if (this.#skippingLongLine) {
      this.#noiseBytes += piece.length;
      return;
    }
    // Copied: the caller may reuse its buffer before the line completes.
    this.#partialLine.push(piece.slice());
    this.#partialLineBytes += piece.length;
    if (this.#partialLineBytes > this.#limits.maxLineBytes) {
      this.#noiseBytes += this.#partialLineBytes;
      this.#clearLine();
      this.#skippingLongLine = true;
      this.#breakFrame(`a line longer than ${this.#limits.maxLineBytes} bytes inside the frame`, events);
    }
  }

  #completeLine(rawLine: Uint8Array, events: GuestFrameEvent[]): void {
    if (rawLine.length > this.#limits.maxLineBytes) {
      this.#noiseBytes += rawLine.length;
      this.#breakFrame(`a line longer than ${this.#limits.maxLineBytes} bytes inside the frame`, events);
      return;
    }
    const line =
      rawLine.length > 0 && rawLine[rawLine.length - 1] === CARRIAGE_RETURN ? rawLine.subarray(0, -1) : rawLine;
    if (line.indexOf(AT_SIGN) !== -1) {
      this.#handleMarkerLine(line, events);
    } else if (this.#state.kind === 'in-frame') {
      this.#handleBodyLine(line, events);
    } else {
      this.#noiseBytes += line.length;
    }
  }

  #handleBodyLine(line: Uint8Array, events: GuestFrameEvent[]): void {
    const state = this.#state;
    if (state.kind !== 'in-frame' || line.length === 0) return;
    const decoded = state.decoder.push(line);
    if (!decoded.ok) {
      this.#breakFrame(`invalid base64 in the body: ${decoded.reason}`, events);
      return;
    }
    state.payloadBytes += decoded.bytes.length;
    if (state.payloadBytes > this.#limits.maxPayloadBytes) {
      this.#breakFrame(`body larger than ${this.#limits.maxPayloadBytes} bytes`, events);
      return;
    }
    if (decoded.bytes.length > 0) state.chunks.push(decoded.bytes);
  }

  #handleMarkerLine(line: Uint8Array, events: GuestFrameEvent[]): void {
    const marker = parseMarker(latin1(line));
    if (marker === undefined) {
      // Noise containing '@'; inside a frame it can only mean the body was damaged.
      this.#breakFrame('a line that is neither base64 nor a marker inside the frame', events);
      this.#noiseBytes += line.length;
      return;
    }
    const state = this.#state;
    if (state.kind === 'in-frame') {
      if (marker.kind === CONTROL_FRAME_KIND.END && marker.id === state.id) {
        this.#finishFrame(state, marker.exitCode, events);
        return;
      }
      this.#breakFrame(`${marker.kind} ${marker.id} arrived before END ${state.id}`, events);
    }
    switch (marker.kind) {
      case CONTROL_FRAME_KIND.BEGIN:
        this.#state = {
          kind: 'in-frame',
          id: marker.id,
          outputSizeBytes: marker.outputSizeBytes,
          encoding: marker.encoding,
          decoder: new Base64StreamDecoder(),
          chunks: [],
          payloadBytes: 0,
        };
        return;
      case CONTROL_FRAME_KIND.END:
        // The BEGIN line and body were dropped (e.g. the host connected mid-frame).
        events.push({ type: 'broken', id: marker.id, reason: `END ${marker.id} without its BEGIN` });
        return;
      case CONTROL_FRAME_KIND.REJECT:
        events.push({ type: 'reject', id: marker.id, reason: marker.reason });
        return;
    }
  }

  #finishFrame(state: Extract<ParserState, { kind: 'in-frame' }>, exitCode: number, events: GuestFrameEvent[]): void {
    this.#state = { kind: 'idle' };
    const finished = state.decoder.finish();
    if (!finished.ok) {
      events.push({ type: 'broken', id: state.id, reason: `invalid base64 in the body: ${finished.reason}` });
      return;
    }
    const payload = concat(state.chunks, state.payloadBytes);
    if (state.encoding === OUTPUT_ENCODING.BASE64 && payload.length !== state.outputSizeBytes) {
      events.push({
        type: 'broken',
        id: state.id,
        reason: `body has ${payload.length} bytes but BEGIN announced ${state.outputSizeBytes}`,
      });
      return;
    }
    events.push({
      type: 'result',
      id: state.id,
      exitCode,
      encoding: state.encoding,
      outputSizeBytes: state.outputSizeBytes,
      payload,
    });
  }

  #breakFrame(reason: string, events: GuestFrameEvent[]): void {
    if (this.#state.kind !== 'in-frame') return;
    events.push({ type: 'broken', id: this.#state.id, reason });
    this.#state = { kind: 'idle' };
  }

  #takeLine(): Uint8Array {
    const line =
      this.#partialLine.length === 1 ? this.#partialLine[0]! : concat(this.#partialLine, this.#partialLineBytes);
    this.#clearLine();
    return line;
  }

  #clearLine(): void {
    this.#partialLine = [];
    this.#partialLineBytes = 0;
  }
}

const MARKER_PATTERN = /^@@VMGMT (BEGIN|END|REJECT) ([^ @]+) ([^ @]+)(?: ([^ @]+))?@@$/;
const DECIMAL_PATTERN = /^(0|[1-9][0-9]{0,15})$/;
const ENCODINGS = new Set<string>(Object.values(OUTPUT_ENCODING));

/** Parses the last marker on a line; text before it (noise glued to the line) is ignored. */
function parseMarker(text: string): Marker | undefined {
  const at = text.lastIndexOf(CONTROL_MARKER_PREFIX);
  if (at === -1 || !text.endsWith(CONTROL_MARKER_SUFFIX)) return undefined;
  const match = MARKER_PATTERN.exec(text.slice(at));
  if (match === null) return undefined;
  const [, kind, id, second, third] = match;
  if (id === undefined || second === undefined || !COMMAND_ID_PATTERN.test(id)) return undefined;
  switch (kind) {
    case CONTROL_FRAME_KIND.BEGIN: {
      if (third === undefined || !ENCODINGS.has(third) || !DECIMAL_PATTERN.test(second)) return undefined;
      const outputSizeBytes = Number(second);
      if (!Number.isSafeInteger(outputSizeBytes)) return undefined;
      return { kind, id, outputSizeBytes, encoding: third as OutputEncoding };
    }
    case CONTROL_FRAME_KIND.END: {
      if (third !== undefined || !DECIMAL_PATTERN.test(second)) return undefined;
      const exitCode = Number(second);
      if (exitCode > MAX_EXIT_CODE) return undefined;
      return { kind, id, exitCode };
    }
    case CONTROL_FRAME_KIND.REJECT:
      if (third !== undefined) return undefined;
      return { kind, id, reason: second };
    default:
      return undefined;
  }
}

function latin1(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}

function concat(chunks: Uint8Array[], totalBytes: number): Uint8Array {
  const out = new Uint8Array(totalBytes);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
