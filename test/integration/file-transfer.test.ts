// The file mode end to end: a real guest under TCG with the real C driver gets, puts and lists files in
// its host root and nowhere else; a hostile guest's garbage gets errors while another VM keeps working.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';

const sha256File = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const tempsIn = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith('.vmgmt-put-'));

describe('file mode in a real guest', () => {
  let base: string;
  let root: string;
  let roRoot: string;
  let vm: DeviceVm;
  let other: DeviceVm;

  beforeAll(async () => {
    base = mkdtempSync(path.join(tmpdir(), 'vmgmt-it-files-'));
    root = path.join(base, 'root');
    roRoot = path.join(base, 'ro');
    for (const d of [root, roRoot, path.join(base, 'outside')]) mkdirSync(d);
    writeFileSync(path.join(base, 'outside', 'secret'), 'host secret');
    writeFileSync(path.join(roRoot, 'readme'), 'read only');
    vm = await startDeviceVm({ name: 'it-files', accel: 'tcg', memoryMiB: 512, files: { root, quotaBytes: 200 * 1024 * 1024 } });
    other = await startDeviceVm({ name: 'it-files-ro', accel: 'tcg', files: { root: roRoot, readOnly: true } });
  });

  afterAll(async () => {
    await vm?.close();
    await other?.close();
    if (vm) expect(expectNoLeftovers(vm.runDir)).toEqual([]);
    if (other) expect(expectNoLeftovers(other.runDir)).toEqual([]);
    rmSync(base, { recursive: true, force: true });
  });

  const sh = async (d: DeviceVm, cmd: string, timeoutMs = 120_000) => d.control.run(cmd, { timeoutMs });

  it.each([
    ['0 B', 0],
    ['1 B', 1],
    ['4 KiB + 1', 4097],
    ['64 MiB', 64 * 1024 * 1024],
  ])('round-trips %s with sha256 checks on both sides', async (_label, size) => {
    const name = `f${size}.bin`;
    const put = await sh(vm, `head -c ${size} /dev/urandom > /tmp/${name} && vmgmt-guest file put /tmp/${name} ${name} --sha256 -q`);
    expect(put.exitCode, put.stdout).toBe(0);
    expect(put.stdout).toMatch(new RegExp(`^put: bytes=${size} ms=\\d+ MBps=[\\d.]+ sha256=[0-9a-f]{64}$`, 'm'));
    const guestSum = (await sh(vm, `sha256sum /tmp/${name}`)).stdout.split(' ')[0];
    expect(sha256File(path.join(root, name))).toBe(guestSum);
    const get = await sh(vm, `vmgmt-guest file get ${name} /tmp/${name}.back --sha256 -q && sha256sum /tmp/${name}.back`);
    expect(get.exitCode, get.stdout).toBe(0);
    expect(get.stdout).toContain(`${guestSum}  /tmp/${name}.back`);
    await sh(vm, `rm -f /tmp/${name} /tmp/${name}.back`);
    expect(tempsIn(root)).toEqual([]);
  });

  it('streams a get to stdout in file order', async () => {
    writeFileSync(path.join(root, 'stream.bin'), new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 13) & 0xff));
    const r = await sh(vm, 'vmgmt-guest file get stream.bin - -q 2>/tmp/summary | sha256sum; cat /tmp/summary');
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain(`${sha256File(path.join(root, 'stream.bin'))}  -`);
    expect(r.stdout).toMatch(/^get: bytes=3145735 /m);
  });

  it('maps the local file where it can (puts by default, gets when asked) and falls back to read()/write() for a pipe', async () => {
    writeFileSync(path.join(root, 'mapped.bin'), new Uint8Array(5 * 1024 * 1024 + 3).map((_, i) => (i * 17) & 0xff));
    const sum = sha256File(path.join(root, 'mapped.bin'));
    // Gets map only when asked (VMGMT_GUEST_MAP; write() measured faster under TCG), puts map by default.
    const r = await sh(vm, 'VMGMT_GUEST_MAP=get,put vmgmt-guest file get mapped.bin /tmp/m --sha256 -q -v 2>&1 && vmgmt-guest file put /tmp/m mapped-back.bin --sha256 -q -v 2>&1 && ' +
      'vmgmt-guest file get mapped.bin /tmp/m2 --sha256 -q -v 2>&1 && cmp /tmp/m /tmp/m2 && ' +
      'VMGMT_GUEST_MAP=get,put vmgmt-guest file get mapped.bin - -q -v 2>/tmp/pipe.log | sha256sum; cat /tmp/pipe.log; rm -f /tmp/m /tmp/m2 /tmp/pipe.log');
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/get: data path mapped/);
    expect(r.stdout).toMatch(/put: data path mapped/);
    expect(r.stdout).toMatch(/get: \/tmp\/m2\.part not mapped \(Operation not supported\): data path read\(\)\/write\(\)/);
    expect(r.stdout).toMatch(/get: stdout not mapped \(No such device\): data path read\(\)\/write\(\)/);
    expect(r.stdout).toContain(`${sum}  -`);
    expect(sha256File(path.join(root, 'mapped-back.bin'))).toBe(sum);
    for (const n of ['mapped.bin', 'mapped-back.bin']) rmSync(path.join(root, n));
  });

  it('a source cut short under a mapped put is an error in words, not a crash, and nothing is committed', async () => {
    const before = readdirSync(root).sort();
    // Stop the put while it holds its channel, cut its source to 4 KiB, let it go on: the next mapped copy
    // touches pages past the new end (SIGBUS), which the driver turns into an error.
    const owns = '"$(vmgmt-guest info)" | grep -q "owner $pid (alive).*mode file"';
    const r = await sh(
      vm,
      'for try in 1 2 3 4 5 6 7 8; do head -c 60000000 /dev/zero > /tmp/cut; vmgmt-guest file put /tmp/cut cut.bin -q & pid=$!; ' +
        `until echo ${owns} || ! kill -0 $pid; do :; done; kill -STOP $pid 2>/dev/null; ` +
        `if echo ${owns}; then truncate -s 4096 /tmp/cut; kill -CONT $pid; wait $pid; echo "rc=$?"; break; fi; ` +
        'kill -CONT $pid 2>/dev/null; wait $pid; vmgmt-guest file rm cut.bin 2>/dev/null; done; rm -f /tmp/cut',
    );
    expect(r.stdout).toMatch(/reading \/tmp\/cut: it was cut below its size 60000000 while mapped \(SIGBUS in the copy at byte \d+\): it changed during the put; run it again/);
    expect(r.stdout).toMatch(/rc=1\b/);
    expect(r.stdout).not.toMatch(/Bus error/);
    expect(readdirSync(root).sort()).toEqual(before);
    expect(vm.files.usage).toMatchObject({ reservedBytes: 0, openFiles: 0 });
  });

  it('resumes an interrupted get', async () => {
    writeFileSync(path.join(root, 'big.bin'), new Uint8Array(48 * 1024 * 1024).map((_, i) => (i * 31) & 0xff));
    // Interrupt once a few MB have arrived (the whole get takes a fraction of a second).
    const cut = await sh(
      vm,
      'vmgmt-guest file get big.bin /tmp/big -q & pid=$!; ' +
        'while [ ! -e /tmp/big ] && [ "$(stat -c %s /tmp/big.part 2>/dev/null || echo 0)" -lt 4000000 ]; do usleep 1000; done; ' +
        'kill -INT $pid; wait $pid; echo "rc=$?"; ls -l /tmp/big.part 2>&1; ls /tmp/big 2>&1',
    );
    expect(cut.stdout).toMatch(/rc=130/);
    expect(cut.stdout).toMatch(/No such file or directory/); // /tmp/big does not exist yet
    const resumed = await sh(vm, 'vmgmt-guest file get big.bin /tmp/big --resume --sha256 -q && sha256sum /tmp/big && rm /tmp/big');
    expect(resumed.exitCode, resumed.stdout).toBe(0);
    expect(resumed.stdout).toContain(sha256File(path.join(root, 'big.bin')));
  });

  it('lists, stats, makes and removes directories', async () => {
    const r = await sh(vm, 'vmgmt-guest file mkdir docs && echo hi > /tmp/h && vmgmt-guest file put /tmp/h docs/h -q && vmgmt-guest file ls docs --json && vmgmt-guest file stat docs/h --json');
    expect(r.exitCode, r.stdout).toBe(0);
    const [ls, st] = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(ls.entries.map((e: { name: string }) => e.name)).toEqual(['h']);
    expect(st).toMatchObject({ type: 'file', sizeBytes: 3 });
    const rm = await sh(vm, 'vmgmt-guest file rm docs --dir; echo "rc=$?"; vmgmt-guest file rm docs/h && vmgmt-guest file rm docs --dir && echo gone');
    expect(rm.stdout).toMatch(/directory not empty[\s\S]*rc=8/);
    expect(rm.stdout).toContain('gone');
    expect(existsSync(path.join(root, 'docs'))).toBe(false);
  });

  it('pages a large directory through LIST snapshots: every entry once, in order', async () => {
    const many = path.join(root, 'many');
    mkdirSync(many);
    // 200-byte names take 224 bytes each: about 1170 fit the driver's 256 KiB page, so this takes 3 pages.
    const names = Array.from({ length: 2500 }, (_, i) => `${'n'.repeat(194)}-${String(i).padStart(5, '0')}`);
    for (const n of names) writeFileSync(path.join(many, n), '');
    try {
      const r = await sh(vm, "vmgmt-guest file ls many > /tmp/ls; echo \"rc=$?\"; wc -l < /tmp/ls; sed 's/.* //' /tmp/ls | sort -c && echo sorted; sed 's/.* //' /tmp/ls | sort -u | wc -l; rm -f /tmp/ls");
      expect(r.stdout.trim().split('\n').map((l) => l.trim())).toEqual(['rc=0', '2500', 'sorted', '2500']);
    } finally {
      rmSync(many, { recursive: true, force: true });
    }
  });

  it('refuses unsafe names and hard-linked files, in words', async () => {
    linkSync(path.join(base, 'outside', 'secret'), path.join(root, 'hardlink'));
    try {
      const r = await sh(vm, `vmgmt-guest file get hardlink /tmp/x -q; echo "rc=$?"; vmgmt-guest file mkdir "$(printf 'a\\tb')"; echo "rc=$?"`);
      expect(r.stdout).toMatch(/more than one hard link[\s\S]*rc=8[\s\S]*control character[\s\S]*rc=8/);
      expect(readdirSync(root)).not.toContain('a\tb');
    } finally {
      rmSync(path.join(root, 'hardlink'));
    }
  });

  it('refuses every way out of the root, in words', async () => {
    symlinkSync(path.join(base, 'outside', 'secret'), path.join(root, 'link-out'));
    symlinkSync(path.join(base, 'outside'), path.join(root, 'dir-out'));
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    execFileSync('mknod', [path.join(root, 'null'), 'c', '1', '3']);
    const cases: [string, RegExp][] = [
      ['../outside/secret', /leaves the VM's host root/],
      ['/etc/passwd', /leaves the VM's host root/],
      ['link-out', /leaves the VM's host root/],
      ['dir-out/secret', /leaves the VM's host root/],
      ['fifo', /not a regular file/],
      ['null', /not a regular file/],
    ];
    for (const [p, words] of cases) {
      const r = await sh(vm, `vmgmt-guest file get ${p} /tmp/x -q`);
      expect(r.exitCode, `${p}: ${r.stdout}`).toBe(8);
      expect(r.stdout, p).toMatch(words);
    }
    const put = await sh(vm, 'echo x > /tmp/x && vmgmt-guest file put /tmp/x dir-out/planted -q');
    expect(put.exitCode).toBe(8);
    expect(existsSync(path.join(base, 'outside', 'planted'))).toBe(false);
  });

  it('a read-only root refuses writes', async () => {
    const r = await sh(other, 'echo x > /tmp/x && vmgmt-guest file put /tmp/x new -q; echo "rc=$?"; vmgmt-guest file get readme /tmp/r -q && cat /tmp/r');
    expect(r.stdout).toMatch(/read-only[\s\S]*rc=8/);
    expect(r.stdout).toContain('read only');
    expect(readdirSync(roRoot)).toEqual(['readme']);
  });

  it('a put over quota is refused and leaves nothing behind', async () => {
    const before = readdirSync(root).sort();
    const r = await sh(vm, 'head -c 210000000 /dev/zero > /tmp/huge; vmgmt-guest file put /tmp/huge huge -q; echo "rc=$?"; rm -f /tmp/huge');
    expect(r.stdout).toMatch(/quota[\s\S]*rc=8/);
    expect(readdirSync(root).sort()).toEqual(before);
  });

  it('a guest process killed mid-put leaks nothing: the agent reclaims its channel and the host drops the temp file', async () => {
    const before = readdirSync(root).sort();
    // Kill the put once its own channel is in file mode (a channel another command used and released stays
    // in file mode until its next claim), i.e. while it transfers. The mapped put is fast enough to finish
    // between the check and the kill, so it is stopped first and killed only if it still holds its channel
    // (else its file is removed and it is tried again).
    const owns = '"$(vmgmt-guest info)" | grep -q "owner $pid (alive).*mode file"';
    const r = await sh(
      vm,
      'head -c 100000000 /dev/zero > /tmp/k && for try in 1 2 3 4 5 6 7 8; do vmgmt-guest file put /tmp/k killed.bin -q & pid=$!; ' +
        `until echo ${owns} || ! kill -0 $pid; do :; done; kill -STOP $pid 2>/dev/null; ` +
        `if echo ${owns}; then kill -9 $pid; wait $pid; echo "rc=$?"; break; fi; ` +
        'kill -CONT $pid 2>/dev/null; wait $pid; vmgmt-guest file rm killed.bin 2>/dev/null; done; rm -f /tmp/k',
    );
    expect(r.stdout).toMatch(/rc=137/);
    const deadline = Date.now() + 15_000;
    const reaped = (): boolean => /agent: reset channel \d+, left claimed by pid \d+, which is gone/.test(readFileSync(path.join(vm.runDir, 'console.log'), 'utf8'));
    while ((!reaped() || tempsIn(root).length > 0) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    expect(reaped(), `${r.stdout}\n${readFileSync(path.join(vm.runDir, 'console.log'), 'utf8').slice(-2000)}`).toBe(true);
    expect(tempsIn(root)).toEqual([]);
    expect(readdirSync(root).sort()).toEqual(before);
    expect(vm.files.usage).toMatchObject({ reservedBytes: 0, openFiles: 0 });
  });

  it('two transfers on two channels at once', async () => {
    writeFileSync(path.join(root, 'a.bin'), new Uint8Array(16 * 1024 * 1024).fill(1));
    writeFileSync(path.join(root, 'b.bin'), new Uint8Array(16 * 1024 * 1024).fill(2));
    const r = await sh(vm, 'vmgmt-guest file get a.bin /tmp/a --sha256 -q & vmgmt-guest file get b.bin /tmp/b --sha256 -q & wait %1 && wait %2 && echo both-ok; rm -f /tmp/a /tmp/b');
    expect(r.stdout, r.stdout).toContain('both-ok');
    expect(r.stdout.match(/^get: bytes=16777216 /gm)).toHaveLength(2);
  });

  it('garbage from a hostile guest gets errors; its device and another VM keep working', async () => {
    const garbage = [
      ['debug raw --mode file --type 0x0102 --length 100000', /status=2 /],
      ['debug raw --type 0x7777', /status=1 /],
      ['debug raw --mode file --type 0x0101 --payload 00000000ffffff7f0100000000000000', /status=(2|11) /],
      ['debug raw --type 0x0101', /status=10 /],
      ['debug poke-prod 4000000000', /NEEDS_RESET last_status=4 /],
    ] as const;
    for (const [cmd, expected] of garbage) {
      const r = await sh(vm, `vmgmt-guest ${cmd} --wait-ms 3000 2>&1`);
      expect(r.stdout, cmd).toMatch(expected);
    }
    const still = await sh(vm, 'vmgmt-guest ping -n 20 && echo x > /tmp/y && vmgmt-guest file put /tmp/y after-garbage -q');
    expect(still.exitCode, still.stdout).toBe(0);
    const neighbour = await sh(other, 'vmgmt-guest ping -n 20 && vmgmt-guest file get readme /tmp/r -q');
    expect(neighbour.exitCode, neighbour.stdout).toBe(0);
    expect(vm.device.core.counters.protocolErrors).toBeGreaterThan(0);
    expect(other.device.core.counters.protocolErrors).toBe(0);
  });
});
