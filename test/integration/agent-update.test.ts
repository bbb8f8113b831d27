// The driver update in place (`vmgmt agent update`) through the real daemon, the device and the test image's
// guest agent under TCG: the agent's version in vm inspect, a corrupt binary refused, a binary that crashes at
// start rolled back with the old agent still serving, and an update to a new build (the same sources with
// another embedded version) in the middle of a chat conversation: the name stays registered, no message is
// lost, copies and statistics go on.
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

const VM = 'it-upd';
const GOOD = '1.0.1-it';
const CRASH = '1.0.2-crash';
const LATE = '1.0.3-late';
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const repo = path.resolve(import.meta.dirname, '../..');

describe('vmgmt agent update', () => {
  let d: DaemonFixture;
  let good: string;
  let crash: string;
  let late: string;
  const vmgmt = (...args: string[]) => d.cli(...args);
  const inspect = async () => (await d.api('GET', `/v1/vms/${VM}`)).body;

  beforeAll(async () => {
    d = await DaemonFixture.start();
    good = path.join(d.baseDir, 'vmgmt-guest-good');
    crash = path.join(d.baseDir, 'vmgmt-guest-crash');
    late = path.join(d.baseDir, 'vmgmt-guest-late');
    // The same sources, other versions embedded; one that aborts as soon as it starts as the agent.
    await Promise.all([
      execa('make', ['-s', '-C', path.join(repo, 'guest-driver'), 'variant', `VERSION=${GOOD}`, `OUT=${good}`]),
      execa('make', ['-s', '-C', path.join(repo, 'guest-driver'), 'variant', `VERSION=${CRASH}`, `OUT=${crash}`, 'CRASH_AT_START=1']),
      // Takes over and passes its probation, but crashes whenever the supervisor starts it.
      execa('make', ['-s', '-C', path.join(repo, 'guest-driver'), 'variant', `VERSION=${LATE}`, `OUT=${late}`, 'CRASH_UNLESS_TAKEOVER=1']),
    ]);
    expect((await d.api('POST', '/v1/vms', { name: VM, accel: 'tcg', memoryMiB: 512 })).status).toBe(201);
    expect((await d.api('POST', `/v1/vms/${VM}/start`)).status).toBe(200);
    await waitFor('the guest agent to report in', async () => ((await inspect()).agent ? true : undefined));
  });

  afterAll(async () => {
    // VMGMT_TEST_DUMP_CONSOLE=1: the guest's console (the agents' own account of the updates) on stdout.
    if (d && process.env.VMGMT_TEST_DUMP_CONSOLE) console.log((await vmgmt('vm', 'logs', VM)).stdout);
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('the agent reports its version at attach; vm inspect shows it', async () => {
    const vm = await inspect();
    expect(vm.agent).toMatchObject({ version: '1.0.0', takeover: false, lastUpdate: null });
    const human = await vmgmt('vm', 'inspect', VM);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/agent:\s+version 1\.0\.0, pid \d+, channel \d+/);
  });

  it('a corrupt binary (not the sha256 the guest must find) is refused and nothing changes', async () => {
    const corrupt = path.join(d.baseDir, 'vmgmt-guest-corrupt');
    copyFileSync(good, corrupt);
    const bytes = readFileSync(corrupt);
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(corrupt, bytes);
    const r = await vmgmt('agent', 'update', VM, '--binary', corrupt, '--sha256', sha(readFileSync(good)));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/sha256/);
    expect(r.stderr).toMatch(/status 80/);
    const vm = await inspect();
    expect(vm.agent.version).toBe('1.0.0');
    expect(vm.agent.lastUpdate).toMatchObject({ toVersion: GOOD, outcome: 'refused' });
  });

  it('a binary that crashes at start is rolled back; the old agent keeps serving (a copy works after)', async () => {
    const pidBefore = (await inspect()).agent.pid;
    const r = await vmgmt('agent', 'update', VM, '--binary', crash);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rolled back/);
    expect(r.stderr).toMatch(/signal 6|Aborted/);
    const vm = await inspect();
    expect(vm.agent).toMatchObject({ version: '1.0.0', pid: pidBefore });
    expect(vm.agent.lastUpdate).toMatchObject({ toVersion: CRASH, outcome: 'rolled-back' });
    const data = randomBytes(300_000);
    const local = path.join(d.baseDir, 'after-rollback.bin');
    writeFileSync(local, data);
    const cp = await vmgmt('cp', local, `${VM}:/tmp/after-rollback.bin`);
    expect(cp.code, cp.stderr).toBe(0);
    expect((await d.guest(VM, 'sha256sum /tmp/after-rollback.bin')).stdout.split(' ')[0]).toBe(sha(data));
    // Nothing was installed: the supervisor would start the old driver again.
    expect((await d.guest(VM, 'vmgmt-guest --version')).stdout.trim()).toBe('vmgmt-guest 1.0.0');
  });

  it('an update in the middle of a chat conversation and of copies keeps the name registered, every message and every copy', async () => {
    const started = await d.guest(VM, 'vmgmt-guest chat register bob >> /tmp/bob.out 2> /tmp/bob.err & echo ok');
    expect(started.exitCode).toBe(0);
    const peers = async (): Promise<string> => (await vmgmt('chat', 'peers')).stdout;
    await waitFor('bob to register', async () => ((await peers()).includes(`${VM}/bob`) ? true : undefined));
    const samplesBefore = (await d.api('GET', `/v1/vms/${VM}/stats?limit=1`)).body.samples.at(-1)?.atMs ?? 0;

    // The host talks to bob the whole time; the update runs meanwhile.
    const sent: string[] = [];
    let updating = true;
    const talk = (async () => {
      for (let i = 0; updating || i < sent.length + 5; i++) {
        const text = `m-${i}`;
        const r = await d.api('POST', '/v1/chat/send', { to: 'bob', text });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        sent.push(text);
        if (!updating && sent.length >= 10) break;
      }
    })();
    // And copies into the guest go on through the update: each lands whole, whichever agent served it.
    const copied: Array<{ file: string; sha: string }> = [];
    const copying = (async () => {
      for (let i = 0; updating || i < 2; i++) {
        const data = randomBytes(64 * 1024 + i);
        const local = path.join(d.baseDir, `during-${i}.bin`);
        writeFileSync(local, data);
        const cp = await vmgmt('cp', local, `${VM}:/tmp/during-${i}.bin`);
        expect(cp.code, cp.stderr).toBe(0);
        copied.push({ file: `/tmp/during-${i}.bin`, sha: sha(data) });
      }
    })();
    const update = await vmgmt('agent', 'update', '--all', '--binary', good);
    updating = false;
    await Promise.all([talk, copying]);
    const sums = (await d.guest(VM, `sha256sum ${copied.map((c) => c.file).join(' ')}`)).stdout.trim().split('\n');
    expect(sums.map((l) => l.split(/\s+/)[0])).toEqual(copied.map((c) => c.sha));
    expect(update.code, update.stderr + update.stdout).toBe(0);
    expect(update.stdout).toMatch(new RegExp(`${VM}\\s+1\\.0\\.0\\s+${GOOD.replace(/\./g, '\\.')}\\s+[0-9.]+\\s+\\d+\\s+updated`));

    const vm = await inspect();
    expect(vm.agent).toMatchObject({ version: GOOD, takeover: true });
    expect(vm.agent.lastUpdate).toMatchObject({ toVersion: GOOD, outcome: 'updated' });
    expect((await vmgmt('vm', 'inspect', VM)).stdout).toContain(`version ${GOOD}`);
    expect(await peers()).toContain(`${VM}/bob`);
    // Every message the host sent reached bob, in order, across the update.
    const got = await waitFor('every message at bob', async () => {
      const lines = (await d.guest(VM, 'cat /tmp/bob.out')).stdout.split('\n').filter((l) => l.includes(' -> bob: '));
      return lines.length >= sent.length ? lines : undefined;
    }, 60_000);
    expect(got.map((l) => l.slice(l.indexOf(' -> bob: ') + 9))).toEqual(sent);
    // The new agent serves copies, the stats stream is back, and it is what the supervisor starts now.
    const data = randomBytes(200_000);
    const local = path.join(d.baseDir, 'after-update.bin');
    writeFileSync(local, data);
    const cp = await vmgmt('cp', local, `${VM}:/tmp/after-update.bin`);
    expect(cp.code, cp.stderr).toBe(0);
    expect((await d.guest(VM, 'sha256sum /tmp/after-update.bin')).stdout.split(' ')[0]).toBe(sha(data));
    await waitFor('a stats sample from the new agent', async () => {
      const last = (await d.api('GET', `/v1/vms/${VM}/stats?limit=1`)).body.samples.at(-1);
      return last && last.atMs > samplesBefore + 1000 ? true : undefined;
    }, 60_000);
    await waitFor('the new binary installed', async () =>
      (await d.guest(VM, 'vmgmt-guest --version')).stdout.trim() === `vmgmt-guest ${GOOD}` ? true : undefined,
    );
  });

  it('an installed driver that keeps crashing when the supervisor starts it is replaced by the one before, not respawned for ever', async () => {
    const up = await vmgmt('agent', 'update', VM, '--binary', late);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    const serving = await inspect();
    expect(serving.agent).toMatchObject({ version: LATE, takeover: true });
    // The agent dies; its parents (the agents it replaced, waiting for it) exit with it, and init starts the
    // installed 1.0.3-late, which aborts at once: three times, then init restores 1.0.1-it.
    await d.guest(VM, `kill -9 ${serving.agent.pid}`);
    const back = await waitFor('the previous driver to serve again', async () => {
      const vm = await inspect();
      return vm.agent && vm.agent.version === GOOD && !vm.agent.takeover ? vm : undefined;
    }, 120_000);
    expect(back.agent.pid).not.toBe(serving.agent.pid);
    expect((await d.guest(VM, 'vmgmt-guest --version')).stdout.trim()).toBe(`vmgmt-guest ${GOOD}`);
    const log = (await vmgmt('vm', 'logs', VM)).stdout;
    expect(log).toMatch(/failed 3 times within 10 s of starting: restoring the driver the last update replaced \(vmgmt-guest 1\.0\.1-it\)/);
    const data = randomBytes(50_000);
    const local = path.join(d.baseDir, 'after-restore.bin');
    writeFileSync(local, data);
    expect((await vmgmt('cp', local, `${VM}:/tmp/after-restore.bin`)).code).toBe(0);
    expect((await d.guest(VM, 'sha256sum /tmp/after-restore.bin')).stdout.split(' ')[0]).toBe(sha(data));
  });

  it('without --binary the daemon sends its own build (the test image\'s driver), as JSON with --json', async () => {
    const r = await vmgmt('agent', 'update', VM, '--json');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const doc = JSON.parse(r.stdout) as { updates: Array<{ name: string; result: { fromVersion: string; toVersion: string; gapMs: number } }> };
    expect(doc.updates).toHaveLength(1);
    expect(doc.updates[0]).toMatchObject({ name: VM, result: { fromVersion: GOOD, toVersion: '1.0.0' } });
    expect(doc.updates[0]!.result.gapMs).toBeGreaterThan(0);
    expect((await inspect()).agent).toMatchObject({ version: '1.0.0', takeover: true });
  });
});
