// The host calculation functions a guest may ask for: each streams its input (fed in order, in chunks)
// and writes its output through a sink, so neither needs the whole input or output in memory.
import { createHash } from 'node:crypto';
import { createGunzip, createGzip, type Gunzip, type Gzip } from 'node:zlib';
import { crc32c } from './crc32c.js';

/** Where a job's output goes, in order. Throws (a RangeError) past the host's limit. */
export type OutputSink = (bytes: Uint8Array) => void;

export interface CalcJob {
  /** Takes the next input bytes; resolves when the function can take more. */
  write(chunk: Uint8Array): Promise<void>;
  /** No more input: resolves when every output byte went to the sink. Rejects if the input was bad. */
  finish(): Promise<void>;
  /** Drops the job (the channel was reset, the device closed). */
  abort(): void;
}

/** What a function is told about the job it starts. */
export interface JobInfo {
  readonly id: number;
  /** Bytes of input the guest declared (CALC_BEGIN); undefined when it streams input of unknown size. */
  readonly inputSize: number | undefined;
  /** The guest's arguments (checked by checkArgs; empty for a function without it). */
  readonly args: readonly string[];
}

export interface CalcFunction {
  readonly name: string;
  readonly description: string;
  /** CALC_KIND: built-in, or a host program (calc-programs.ts). */
  readonly kind?: number;
  /** Why these guest arguments are refused, or undefined when they are taken. Without it the function takes none. */
  checkArgs?(args: readonly string[]): string | undefined;
  /** May throw a Refusal (a host program at its concurrency limit: CALC_BUSY). */
  start(sink: OutputSink, job: JobInfo): CalcJob;
}

const digest = (name: string, description: string, algorithm: 'sha256' | 'sha512'): CalcFunction => ({
  name,
  description,
  start: (sink) => {
    const h = createHash(algorithm);
    return {
      write: async (chunk) => void h.update(chunk),
      finish: async () => sink(new Uint8Array(h.digest())),
      abort: () => {},
    };
  },
});

const crc: CalcFunction = {
  name: 'crc32c',
  description: 'CRC-32C (Castagnoli) of the input: 4 bytes, little-endian',
  start: (sink) => {
    let c = 0;
    return {
      write: async (chunk) => void (c = crc32c(chunk, c)),
      finish: async () => {
        const out = new Uint8Array(4);
        new DataView(out.buffer).setUint32(0, c, true);
        sink(out);
      },
      abort: () => {},
    };
  },
};

/** A zlib stream as a job: its output goes to the sink as it comes; writes wait while it is busy. */
function zlibJob(stream: Gzip | Gunzip, sink: OutputSink): CalcJob {
  let failure: Error | undefined;
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('data', (b: Buffer) => {
      try {
        sink(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
      } catch (err) {
        failure = err as Error;
        stream.destroy(failure);
      }
    });
    stream.once('end', () => (failure ? reject(failure) : resolve()));
    stream.once('error', (err) => reject(failure ?? err));
  });
  ended.catch(() => {}); // observed through finish()
  return {
    write: (chunk) =>
      new Promise((resolve, reject) => {
        if (failure) return reject(failure);
        // The stream may keep a reference: give it its own copy of the guest's bytes. A stream that fails
        // on this input does not always call back: its failure settles the write too.
        stream.write(Buffer.from(chunk), (err) => (err ? reject(failure ?? err) : resolve()));
        ended.catch(reject);
      }),
    finish: async () => {
      stream.end();
      await ended;
    },
    abort: () => void stream.destroy(),
  };
}

export const BUILTIN_FUNCTIONS: readonly CalcFunction[] = [
  digest('sha256', 'SHA-256 of the input: 32 bytes', 'sha256'),
  digest('sha512', 'SHA-512 of the input: 64 bytes', 'sha512'),
  crc,
  { name: 'gzip', description: 'the input compressed with gzip (level 6)', start: (sink) => zlibJob(createGzip(), sink) },
  { name: 'gunzip', description: 'the input (gzip data) decompressed', start: (sink) => zlibJob(createGunzip(), sink) },
];
