import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BUILTIN_FUNCTIONS, type CalcFunction } from './calc-functions.js';
import { crc32c } from './crc32c.js';

const fn = (name: string): CalcFunction => BUILTIN_FUNCTIONS.find((f) => f.name === name)!;

async function run(name: string, input: Uint8Array, chunk = 7919): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const job = fn(name).start((b) => parts.push(Uint8Array.from(b)), { id: 1, inputSize: input.byteLength, args: [] });
  for (let at = 0; at < input.length; at += chunk) await job.write(input.subarray(at, at + chunk));
  await job.finish();
  return Buffer.concat(parts);
}

describe('calculation functions', () => {
  const data = new Uint8Array(300_000).map((_, i) => (i * 31 + (i >> 9)) & 0xff);

  it('crc32c matches the standard check value and is incremental', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(data.subarray(1000), crc32c(data.subarray(0, 1000)))).toBe(crc32c(data));
  });

  it('sha256, sha512 and crc32c of input fed in chunks are those of the whole', async () => {
    expect(Buffer.from(await run('sha256', data)).toString('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(Buffer.from(await run('sha512', data)).toString('hex')).toBe(createHash('sha512').update(data).digest('hex'));
    expect(Buffer.from(await run('crc32c', data)).readUInt32LE(0)).toBe(crc32c(data));
  });

  it('gzip and gunzip stream and round-trip; bad gzip input fails the job', async () => {
    const packed = await run('gzip', data);
    expect(Buffer.from(gunzipSync(packed)).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(await run('gunzip', gzipSync(data))).equals(Buffer.from(data))).toBe(true);
    await expect(run('gunzip', new TextEncoder().encode('not gzip at all'))).rejects.toThrow();
  });

  it('a sink that refuses (the output limit) fails the job', async () => {
    const job = fn('gunzip').start(
      () => {
        throw new RangeError('output larger than 10 bytes');
      },
      { id: 1, inputSize: 0, args: [] },
    );
    await job.write(gzipSync(data)).catch(() => {});
    await expect(job.finish()).rejects.toThrow(/larger than 10 bytes/);
  });
});
