// startQemu's failure paths, with stand-in binaries (the real QEMU runs in test/integration/qmp-launch.test.ts).
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { QemuVmSpec } from './qemu-args.js';
import { startQemu } from './qemu-process.js';

let dir: string;
let spec: QemuVmSpec;

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-qemu-process-'));
  spec = {
    name: 'unit',
    uuid: randomUUID(),
    accel: 'tcg',
    memoryMiB: 64,
    cpus: 1,
    kernelPath: '/k',
    initrdPath: '/i',
    append: '',
    qmpSocketPath: join(dir, 'qmp.sock'),
    consoleLogPath: join(dir, 'console.log'),
  };
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('startQemu failure paths', () => {
  it('kills a binary that never opens its QMP socket and reports START_TIMEOUT with its output', async () => {
    const pidFile = join(dir, 'pid');
    const binary = await script('hang', `echo $$ > ${pidFile}; echo "stand-in is hanging" >&2; exec sleep 60`);
    const err = await startQemu(spec, { runDir: dir, binary, startTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'START_TIMEOUT', details: { timeoutMs: 300 } });
    expect((err as Error).message).toContain('stand-in is hanging');
    const pid = Number(await readFile(pidFile, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('reports EXITED_DURING_START with only this run of the log', async () => {
    await writeFile(join(dir, 'qemu.log'), 'output of an earlier run\n');
    const binary = await script('fail', 'echo "qemu-system-x86_64: something is wrong with $2" >&2; exit 3');
    const err = await startQemu(spec, { runDir: dir, binary }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EXITED_DURING_START', details: { exitCode: 3 } });
    const { logTail } = (err as { details: { logTail: string } }).details;
    expect(logTail).toBe('qemu-system-x86_64: something is wrong with unit,debug-threads=on');
    expect(await readFile(join(dir, 'qemu.log'), 'utf8')).toMatch(/^output of an earlier run\n=== vmgmt: .* starting /);
  });

  it('refuses to delete a non-socket file at the QMP socket path', async () => {
    await writeFile(spec.qmpSocketPath, 'not a socket');
    await expect(startQemu(spec, { runDir: dir, binary: '/bin/true' })).rejects.toMatchObject({ code: 'INVALID_SPEC' });
  });
});
