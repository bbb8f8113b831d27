// The built test guest (images/build/) boots under TCG, loads vfio-pci, sees the ivshmem PCI device,
// answers on the ttyS1 control channel, and powers itself off in probe mode.
// Needs: bash images/build-image.sh
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBE_CMDLINE_FLAG, PROBE_OK_MARKER } from '../../orchestrator/guest-control/control-protocol.js';
import { GuestControlClient } from '../../orchestrator/guest-control/guest-control-client.js';
import {
  bootTestGuest,
  readConsoleLog,
  requireGuestImage,
  stopTestGuest,
  type GuestImage,
  type TestGuest,
} from '../support/image/test-guest.js';

const READY_TIMEOUT_MS = 60_000;

let runDir: string;
let image: GuestImage;

beforeAll(async () => {
  image = requireGuestImage();
  runDir = await mkdtemp(`/tmp/vmgmt-test-image-${randomBytes(3).toString('hex')}-`);
});

afterAll(async () => {
  if (runDir !== undefined) await rm(runDir, { recursive: true, force: true });
});

describe('booted test guest', () => {
  let guest: TestGuest | undefined;
  let client: GuestControlClient | undefined;

  beforeAll(async () => {
    guest = await bootTestGuest(image, runDir);
    client = await GuestControlClient.connect(guest.controlSocketPath, { timeoutMs: 10_000 });
    try {
      await client.waitReady({ timeoutMs: READY_TIMEOUT_MS });
    } catch (err) {
      throw new Error(`guest not ready; console log:\n${readConsoleLog(guest)}`, { cause: err });
    }
    const readyMs = performance.now() - guest.startedAtMs;
    console.log(`test guest: QEMU start to control channel ready ${Math.round(readyMs)} ms (TCG)`);
  });

  afterAll(async () => {
    client?.close();
    await stopTestGuest(guest);
  });

  const run = (command: string, timeoutMs?: number) => client!.run(command, timeoutMs === undefined ? {} : { timeoutMs });

  it('runs the kernel recorded in kernel-version.txt', async () => {
    const result = await run('uname -r');
    expect(result).toMatchObject({ exitCode: 0, stdout: `${image.kernel.release}\n` });
  });

  it('has vfio-pci loaded', async () => {
    const result = await run('ls /sys/bus/pci/drivers/vfio-pci && lsmod');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/^vfio_pci\s/m);
  });

  it('sees the ivshmem PCI device (vendor 0x1af4)', async () => {
    const result = await run('cat /sys/bus/pci/devices/*/vendor');
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n')).toContain('0x1af4');
  });

  it('returns the exit code and stderr of a failing command', async () => {
    const result = await run('echo to-stderr >&2; exit 3');
    expect(result).toMatchObject({ exitCode: 3, stdout: 'to-stderr\n' });
  });

  it('round-trips 1 MiB of output exactly', async () => {
    const result = await run("head -c 1048576 /dev/zero | tr '\\0' 'a'");
    expect(result.exitCode).toBe(0);
    expect(result.stdout.length).toBe(1024 * 1024);
    expect(/^a*$/.test(result.stdout)).toBe(true);
    console.log(`test guest: 1 MiB compressible output in ${Math.round(result.durationMs)} ms`);
  });

  it('round-trips 256 KiB of random text byte for byte', async () => {
    const sizeBytes = 256 * 1024;
    const made = await run(`head -c ${sizeBytes} /dev/urandom | base64 -w 0 | head -c ${sizeBytes} > /tmp/rnd && sha256sum /tmp/rnd`);
    expect(made.exitCode).toBe(0);
    const result = await run('cat /tmp/rnd');
    expect(result.stdout.length).toBe(sizeBytes);
    expect(`${createHash('sha256').update(result.stdout).digest('hex')}  /tmp/rnd\n`).toBe(made.stdout);
    const kibPerS = sizeBytes / 1024 / (result.durationMs / 1000);
    console.log(`test guest: ${sizeBytes / 1024} KiB random base64 text in ${Math.round(result.durationMs)} ms (${Math.round(kibPerS)} KiB/s)`);
  });

  it('accepts a 32 KiB command', async () => {
    const payload = 'x'.repeat(32 * 1024);
    const result = await run(`printf '%s' '${payload}' | wc -c`);
    expect(result).toMatchObject({ exitCode: 0, stdout: `${payload.length}\n` });
    console.log(`test guest: 32 KiB command in ${Math.round(result.durationMs)} ms`);
  });

  it('passes UTF-8 and shell syntax through unchanged', async () => {
    const result = await run(`printf '%s|' "héllo wörld" 'a b' "$((6 * 7))"; echo`);
    expect(result).toMatchObject({ exitCode: 0, stdout: 'héllo wörld|a b|42|\n' });
  });
});

describe('probe mode (vmgmt.probe=1)', () => {
  let guest: TestGuest | undefined;

  afterAll(async () => {
    await stopTestGuest(guest);
  });

  it('prints the probe marker on the console and powers off by itself', async () => {
    guest = await bootTestGuest(image, await mkdtemp(`${runDir}/probe-`), { appendExtra: PROBE_CMDLINE_FLAG });
    const giveUp = new AbortController();
    const exit = await Promise.race([guest.exited, sleep(READY_TIMEOUT_MS, undefined, { signal: giveUp.signal })]).finally(() => giveUp.abort());
    expect(exit, `QEMU still running after ${READY_TIMEOUT_MS} ms; console:\n${readConsoleLog(guest)}`).toBeDefined();
    expect(exit!.exitCode).toBe(0);
    expect(readConsoleLog(guest)).toContain(PROBE_OK_MARKER);
    console.log(`test guest: probe boot to power-off ${Math.round(performance.now() - guest.startedAtMs)} ms (TCG)`);
  });
});
