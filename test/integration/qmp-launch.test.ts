// Real QEMU, real QMP: launch, commands, events, shutdown, crash, bad arguments, accelerator probe.
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpError, type QmpEvent } from '../../orchestrator/qmp/qmp-client.js';
import { resolveAccel } from '../../orchestrator/qemu/accel-probe.js';
import type { QemuVmSpec } from '../../orchestrator/qemu/qemu-args.js';
import { QemuError } from '../../orchestrator/qemu/qemu-error.js';
import { startQemu, type QemuProcess } from '../../orchestrator/qemu/qemu-process.js';

const IMAGE_KERNEL = resolve('images/build/vmlinuz');
const IMAGE_INITRD = resolve('images/build/initramfs.cpio.gz');
const haveImage = existsSync(IMAGE_KERNEL) && existsSync(IMAGE_INITRD);

let root: string;
let kernelPath: string;
let initrdPath: string;
const started: QemuProcess[] = [];

/**
 * Without the built guest image, a stub bzImage (only the setup header) lets QEMU load a "kernel";
 * every VM here is started paused (-S), so the guest never runs it.
 */
async function writeStubKernel(dir: string): Promise<{ kernel: string; initrd: string }> {
  const image = Buffer.alloc(8192);
  image[0x1f1] = 4; // setup_sects
  image.writeUInt16LE(0xaa55, 0x1fe);
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt16LE(0x020f, 0x206); // boot protocol 2.15
  image[0x211] = 1; // loadflags: LOADED_HIGH
  image.writeUInt32LE(0x7fffffff, 0x22c); // initrd_addr_max
  const kernel = join(dir, 'stub-bzImage');
  const initrd = join(dir, 'stub-initrd');
  await writeFile(kernel, image);
  await writeFile(initrd, Buffer.alloc(512));
  return { kernel, initrd };
}

async function makeSpec(name: string, patch: Partial<QemuVmSpec> = {}): Promise<{ spec: QemuVmSpec; runDir: string }> {
  const runDir = await mkdtemp(join(root, `${name}-`));
  return {
    runDir,
    spec: {
      name,
      uuid: randomUUID(),
      accel: 'tcg',
      memoryMiB: 128,
      cpus: 1,
      kernelPath,
      initrdPath,
      append: 'console=ttyS0 panic=-1',
      qmpSocketPath: join(runDir, 'qmp.sock'),
      consoleLogPath: join(runDir, 'console.log'),
      controlSocketPath: join(runDir, 'ctl.sock'),
      extraArgs: ['-S'],
      ...patch,
    },
  };
}

async function launch(name: string, patch: Partial<QemuVmSpec> = {}): Promise<{ qemu: QemuProcess; spec: QemuVmSpec }> {
  const { spec, runDir } = await makeSpec(name, patch);
  const qemu = await startQemu(spec, { runDir });
  started.push(qemu);
  return { qemu, spec };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgmt-qmp-it-'));
  if (haveImage) {
    kernelPath = IMAGE_KERNEL;
    initrdPath = IMAGE_INITRD;
  } else {
    ({ kernel: kernelPath, initrd: initrdPath } = await writeStubKernel(root));
  }
});

afterAll(async () => {
  for (const qemu of started) await qemu.kill().catch(() => {});
  for (const qemu of started) expect(isAlive(qemu.pid)).toBe(false);
  await rm(root, { recursive: true, force: true });
});

describe('QEMU launch and QMP', () => {
  it('answers query-status and query-version, and reports STOP/RESUME events', async () => {
    const { qemu, spec } = await launch('basic');
    expect(qemu.qmp.greeting.QMP.version.qemu.major).toBeGreaterThanOrEqual(7);

    const status = await qemu.qmp.execute<{ status: string; running: boolean }>('query-status');
    expect(status).toMatchObject({ status: 'prelaunch', running: false });
    const version = await qemu.qmp.execute<{ qemu: { major: number; minor: number } }>('query-version');
    expect(version.qemu).toEqual(qemu.qmp.greeting.QMP.version.qemu);
    const name = await qemu.qmp.execute<{ name: string }>('query-name');
    expect(name.name).toBe(spec.name);

    const seen: string[] = [];
    const collector = (async () => {
      for await (const e of qemu.qmp.events()) seen.push(e.event);
    })();
    const resumed = qemu.qmp.waitForEvent('RESUME', { timeoutMs: 5000 });
    await qemu.qmp.execute('cont');
    const resume: QmpEvent = await resumed;
    expect(resume.timestamp.seconds).toBeGreaterThan(0);
    const stopped = qemu.qmp.waitForEvent('STOP', { timeoutMs: 5000 });
    await qemu.qmp.execute('stop');
    await stopped;
    expect(await qemu.qmp.execute('query-status')).toMatchObject({ status: 'paused', running: false });

    const err = await qemu.qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ code: 'COMMAND_FAILED', details: { qmpClass: 'CommandNotFound' } });

    expect(lstatSync(spec.qmpSocketPath).isSocket()).toBe(true);
    expect(lstatSync(spec.controlSocketPath as string).isSocket()).toBe(true);
    const startedShutdown = Date.now();
    await qemu.shutdown();
    expect(Date.now() - startedShutdown).toBeLessThan(4000);
    expect(await qemu.exited).toEqual({ exitCode: 0, signal: null });
    await collector;
    expect(seen).toEqual(['RESUME', 'STOP', 'SHUTDOWN']);
    await qemu.qmp.closed;
    expect(existsSync(spec.qmpSocketPath)).toBe(false);
    expect(existsSync(spec.controlSocketPath as string)).toBe(false);
    expect(isAlive(qemu.pid)).toBe(false);
  });

  it('runs QEMU in its own session, logs its argv, and removes a stale QMP socket first', async () => {
    const { spec, runDir } = await makeSpec('stale');
    // A socket file left behind by a killed process.
    await execa(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(spec.qmpSocketPath)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ], { reject: false });
    expect(lstatSync(spec.qmpSocketPath).isSocket()).toBe(true);
    const qemu = await startQemu(spec, { runDir });
    started.push(qemu);
    const { stdout } = await execa('ps', ['-o', 'sid=', '-p', String(qemu.pid)]);
    expect(Number(stdout.trim())).toBe(qemu.pid);
    expect(await qemu.qmp.execute('query-status')).toMatchObject({ status: 'prelaunch' });
    await qemu.shutdown();
  });

  it('rejects a pending command with DISCONNECTED when QEMU is killed with SIGKILL', async () => {
    const { qemu, spec } = await launch('killed');
    // Frozen first, so the command is certainly still unanswered when QEMU dies.
    process.kill(qemu.pid, 'SIGSTOP');
    const pending = qemu.qmp.execute('query-status');
    await new Promise((r) => setTimeout(r, 100));
    process.kill(qemu.pid, 'SIGKILL');
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ code: 'DISCONNECTED', details: { command: 'query-status' } });
    expect((err as Error).message).toMatch(/"query-status".*QEMU exited or closed the QMP socket/);
    expect(await qemu.exited).toEqual({ exitCode: null, signal: 'SIGKILL' });
    await qemu.kill();
    expect(existsSync(spec.qmpSocketPath)).toBe(false);
  });

  it("rejects a start with an invalid argument, quoting QEMU's own error", async () => {
    const { spec, runDir } = await makeSpec('invalid', { extraArgs: ['-S', '-device', 'no-such-device-model'] });
    const err = await startQemu(spec, { runDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QemuError);
    expect(err).toMatchObject({ code: 'EXITED_DURING_START', details: { exitCode: 1 } });
    expect((err as Error).message).toContain("'no-such-device-model' is not a valid device model name");
    expect(existsSync(spec.qmpSocketPath)).toBe(false);
  });

  it('rejects a missing binary with SPAWN_FAILED', async () => {
    const { spec, runDir } = await makeSpec('nobinary');
    await expect(startQemu(spec, { runDir, binary: '/nonexistent/qemu-system-x86_64' })).rejects.toMatchObject({
      code: 'SPAWN_FAILED',
    });
  });
});

describe.skipIf(!haveImage)('accelerator self-probe (needs images/build)', () => {
  it("resolves 'auto' to tcg here, with a reason, and uses the cache the second time", async () => {
    const cacheDir = join(root, 'cache');
    const t0 = Date.now();
    const first = await resolveAccel('auto', { kernelPath: IMAGE_KERNEL, initrdPath: IMAGE_INITRD, cacheDir });
    const firstMs = Date.now() - t0;
    console.log(`[accel-probe] first: ${JSON.stringify(first)} in ${firstMs} ms`);
    expect(first.accel).toBe('tcg');
    expect(first.fromCache).toBe(false);
    expect(first.reason.length).toBeGreaterThan(20);
    expect(existsSync(join(cacheDir, 'kvm-probe.json'))).toBe(true);

    const t1 = Date.now();
    const second = await resolveAccel('auto', { kernelPath: IMAGE_KERNEL, initrdPath: IMAGE_INITRD, cacheDir });
    const secondMs = Date.now() - t1;
    console.log(`[accel-probe] second: ${JSON.stringify(second)} in ${secondMs} ms`);
    expect(second).toMatchObject({ accel: 'tcg', fromCache: true });
    expect(secondMs).toBeLessThan(2000);

    expect(await resolveAccel('kvm', { kernelPath: IMAGE_KERNEL, initrdPath: IMAGE_INITRD, cacheDir })).toMatchObject({
      accel: 'kvm',
    });
  });
});
