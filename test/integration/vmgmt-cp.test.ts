// `vmgmt cp` both ways through the real daemon, the device and the guest agent the test image starts.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('vmgmt cp', () => {
  let d: DaemonFixture;
  const vmgmt = (...args: string[]) => d.cli(...args);

  beforeAll(async () => {
    d = await DaemonFixture.start();
    expect((await d.api('POST', '/v1/vms', { name: 'it-cp', accel: 'tcg', memoryMiB: 512 })).status).toBe(201);
    expect((await d.api('POST', '/v1/vms/it-cp/start')).status).toBe(200);
    await d.waitForAgent('it-cp', 60_000);
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it.each([0, 1, 4097, 24 * 1024 * 1024])('copies %i bytes into the guest and back out, byte for byte', async (size) => {
    const data = randomBytes(size);
    const local = path.join(d.baseDir, `in-${size}.bin`);
    writeFileSync(local, data);
    const up = await vmgmt('cp', local, `it-cp:/tmp/f-${size}`);
    expect(up.code, up.stderr).toBe(0);
    const inGuest = await d.guest('it-cp', `sha256sum /tmp/f-${size}`);
    expect(inGuest.stdout.split(' ')[0]).toBe(sha(data));
    const back = path.join(d.baseDir, `out-${size}.bin`);
    const down = await vmgmt('cp', `it-cp:/tmp/f-${size}`, back);
    expect(down.code, down.stderr).toBe(0);
    expect(sha(readFileSync(back))).toBe(sha(data));
  });

  it('reports progress as JSON lines and ends with done', async () => {
    const local = path.join(d.baseDir, 'progress.bin');
    writeFileSync(local, randomBytes(8 * 1024 * 1024));
    const r = await vmgmt('cp', '--json', local, 'it-cp:/tmp/progress.bin');
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; stage?: string; bytes?: number });
    expect(events.some((e) => e.event === 'progress' && e.stage === 'guest')).toBe(true);
    expect(events.at(-1)).toMatchObject({ event: 'done', bytes: 8 * 1024 * 1024 });
  });

  it('a missing guest file is an error in words, and nothing is left locally', async () => {
    const r = await vmgmt('cp', 'it-cp:/no/such/file', path.join(d.baseDir, 'never'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no such file/i);
    expect(readdirSync(d.baseDir).filter((n) => n.includes('never'))).toEqual([]);
  });
});
