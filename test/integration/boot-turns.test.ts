// VMs started at once boot in turns (boot.maxConcurrent), each turn ending when the guest agent is up; a
// copy to a VM whose guest is still booting waits for its agent until the boot's deadline.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const NAMES = ['it-turn-a', 'it-turn-b', 'it-turn-c'];

describe('boot turns', () => {
  let d: DaemonFixture;

  beforeAll(async () => {
    d = await DaemonFixture.start({ config: { boot: { maxConcurrent: 1, agentWaitMs: 120_000 } } });
    for (const name of NAMES) expect((await d.api('POST', '/v1/vms', { name, accel: 'tcg' })).status).toBe(201);
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('three VMs started at once boot one after another, and a copy to the last waits for its boot', async () => {
    const local = path.join(d.baseDir, 'hello.txt');
    writeFileSync(local, 'hello from the host');
    const starts = NAMES.map((name) => d.api('POST', `/v1/vms/${name}/start`, undefined, 300_000));
    const started = await Promise.all(starts);
    for (const r of started) expect(r.status, JSON.stringify(r.body)).toBe(200);
    // The last VM has just been started: its guest is still booting, and the copy waits for its agent.
    const cp = await d.cli('cp', local, `${NAMES[2]}:/tmp/hello.txt`);
    expect(cp.code, cp.stderr).toBe(0);
    expect((await d.guest(NAMES[2]!, 'cat /tmp/hello.txt')).stdout).toBe('hello from the host');
    expect(d.log).toMatch(/waiting for a turn to boot: 1 VMs are booting/);
    // In turns: each VM was started after the one before it.
    const at = started.map((r) => Date.parse(r.body.startedAt as string));
    expect(at[1]).toBeGreaterThan(at[0]!);
    expect(at[2]).toBeGreaterThan(at[1]!);
    for (const name of NAMES) expect((await d.api('POST', `/v1/vms/${name}/kill`)).status).toBe(200);
  });
});
