// `vmgmt cp` end to end: runCli against the real API server on a UNIX socket, backed by FakeVmManager's
// in-memory guest files.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeVmManager } from '../api/fake-vm-manager.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import { CliHarness } from './cli-test-harness.js';

let h: CliHarness | undefined;
let work: string;
let transferDir: string;
let manager: FakeVmManager;

beforeEach(async () => {
  h = await CliHarness.start();
  ({ work, transferDir, manager } = h);
});

afterEach(async () => {
  await h?.close();
  h = undefined;
});

const vmgmt = (args: string[], opts: { tty?: boolean } = {}) => h!.vmgmt(args, opts);

/** What the transfer directory holds (a push streams through a pipe and never creates it). */
const transferFiles = (): Promise<string[]> => readdir(transferDir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));

const sizes = [0, 1, 5 * 1024 * 1024];

/** Length and SHA-256: a byte-exact check whose failure message stays short (toEqual on MiBs is slow). */
const digest = (bytes: Uint8Array | undefined): string =>
  bytes === undefined ? 'missing' : `${bytes.byteLength}:${createHash('sha256').update(bytes).digest('hex')}`;

describe('vmgmt cp', () => {
  it.each(sizes)('uploads %i bytes byte-exact and leaves no transfer file', async (size) => {
    const data = randomBytes(size);
    const local = join(work, 'file.bin');
    await writeFile(local, data);
    const run = await vmgmt(['cp', local, 'vm1:/tmp/file.bin']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^copied .*file\.bin to vm1:\/tmp\/file\.bin \(.+\)\n$/);
    expect(digest(manager.guestFiles.get('/tmp/file.bin'))).toBe(digest(data));
    expect(await transferFiles()).toEqual([]);
  });

  it.each(sizes)('downloads %i bytes byte-exact, atomically, and leaves no transfer file', async (size) => {
    const data = randomBytes(size);
    manager.guestFiles.set('/etc/blob', data);
    const local = join(work, 'blob');
    const run = await vmgmt(['cp', 'vm1:/etc/blob', local]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toBe(`copied vm1:/etc/blob to ${local} (${size === 0 ? '0 B' : size === 1 ? '1 B' : '5.0 MiB'})\n`);
    expect(digest(await readFile(local))).toBe(digest(data));
    expect(await readdir(work)).toEqual(['blob']);
    expect(await transferFiles()).toEqual([]);
  });

  it('puts the file inside an existing local directory, and under a guest directory given with /', async () => {
    manager.guestFiles.set('/etc/hostname', Buffer.from('vm1\n'));
    expect((await vmgmt(['cp', 'vm1:/etc/hostname', work])).code).toBe(0);
    expect(await readFile(join(work, 'hostname'), 'utf8')).toBe('vm1\n');
    expect((await vmgmt(['cp', join(work, 'hostname'), 'vm1:/root/'])).code).toBe(0);
    expect(Buffer.from(manager.guestFiles.get('/root/hostname') ?? []).toString()).toBe('vm1\n');
  });

  it('replaces an existing local file only when the copy succeeded', async () => {
    const local = join(work, 'keep');
    await writeFile(local, 'old');
    const missing = await vmgmt(['cp', 'vm1:/nope', local]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('vmgmt: the guest agent could not copy /nope: no such file (status 2)\n');
    expect(await readFile(local, 'utf8')).toBe('old');
    expect(await readdir(work)).toEqual(['keep']);

    manager.guestFiles.set('/big', randomBytes(1024 * 1024));
    manager.failCopy = new VmgmtError('AGENT_UNAVAILABLE', 'the guest agent went away during the copy: channel reset');
    const cut = await vmgmt(['cp', 'vm1:/big', local]);
    expect(cut).toEqual({ code: 1, stdout: '', stderr: 'vmgmt: the guest agent went away during the copy: channel reset\n' });
    expect(await readFile(local, 'utf8')).toBe('old');
    expect(await readdir(work)).toEqual(['keep']);
    expect(await transferFiles()).toEqual([]);
  });

  it('surfaces an error event from the manager during a push as exit code and message', async () => {
    const local = join(work, 'f');
    await writeFile(local, randomBytes(2 * 1024 * 1024));
    manager.failCopy = new VmgmtError('GUEST_REFUSED', 'the guest agent could not copy /ro/f: read-only file system (status 30)', { status: 30 });
    const run = await vmgmt(['cp', local, 'vm1:/ro/f']);
    expect(run).toEqual({ code: 1, stdout: '', stderr: 'vmgmt: the guest agent could not copy /ro/f: read-only file system (status 30)\n' });
    expect(manager.guestFiles.has('/ro/f')).toBe(false);
    expect(await transferFiles()).toEqual([]);

    manager.failCopy = new VmgmtError('TIMEOUT', 'the guest agent did not finish copying /x within 10 ms');
    expect((await vmgmt(['cp', local, 'vm1:/x'])).code).toBe(7);
  });

  it('answers before streaming for an unknown or stopped VM, even with a large body', async () => {
    const local = join(work, 'f');
    await writeFile(local, randomBytes(5 * 1024 * 1024));
    const ghost = await vmgmt(['cp', local, 'ghost:/tmp/f']);
    expect(ghost).toMatchObject({ code: 4, stderr: expect.stringMatching(/^vmgmt: no vm named ghost/) });
    await manager.stop('vm1');
    const stopped = await vmgmt(['cp', local, 'vm1:/tmp/f']);
    expect(stopped.code).toBe(5);
    expect(stopped.stderr).toBe('vmgmt: vm vm1 is stopped: copies need a running VM; start it with `vmgmt vm start vm1`\n');
    expect((await vmgmt(['cp', 'vm1:/tmp/f', join(work, 'g')])).code).toBe(5);
    expect(await readdir(work)).toEqual(['f']);
  });

  it('reports local file problems with the path and the reason, exit 1', async () => {
    const missing = join(work, 'missing');
    expect(await vmgmt(['cp', missing, 'vm1:/tmp/x'])).toEqual({
      code: 1,
      stdout: '',
      stderr: `vmgmt: cannot read ${missing}: no such file or directory (ENOENT)\n`,
    });
    expect((await vmgmt(['cp', work, 'vm1:/tmp/x'])).stderr).toBe(`vmgmt: cannot copy ${work}: it is a directory: copy it with vmgmt cp -r\n`);
    manager.guestFiles.set('/f', Buffer.from('x'));
    const noDir = join(work, 'no', 'such', 'f');
    expect(await vmgmt(['cp', 'vm1:/f', noDir])).toMatchObject({ code: 1, stderr: `vmgmt: cannot write ${noDir}: no such file or directory (ENOENT)\n` });
    expect(manager.calls.some((c) => c.method === 'copyFromGuest')).toBe(false);
    const json = await vmgmt(['cp', missing, 'vm1:/tmp/x', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ event: 'error', code: 'FILE_UNREADABLE', message: expect.stringContaining(missing), details: { path: missing, errno: 'ENOENT' } });
  });

  it('reports a destination that cannot be written', async () => {
    manager.guestFiles.set('/f', Buffer.from('x'));
    await writeFile(join(work, 'plain'), 'a file, not a directory');
    const target = join(work, 'plain', 'f');
    const run = await vmgmt(['cp', 'vm1:/f', target]);
    expect(run).toEqual({ code: 1, stdout: '', stderr: `vmgmt: cannot write ${target}: not a directory (ENOTDIR)\n` });
    const dirTarget = join(work, 'sub');
    await mkdir(join(dirTarget, 'f'), { recursive: true });
    expect((await vmgmt(['cp', 'vm1:/f', dirTarget])).stderr).toBe(`vmgmt: cannot write ${join(dirTarget, 'f')}: it is a directory\n`);
  });

  it('prints NDJSON events with --json, ending in one done event', async () => {
    const data = randomBytes(1024 * 1024 + 3);
    const local = join(work, 'up');
    await writeFile(local, data);
    const up = await vmgmt(['cp', '--json', local, 'vm1:/up']);
    expect(up.code).toBe(0);
    expect(up.stderr).toBe('');
    const upEvents = up.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(upEvents.at(-1)).toEqual({ event: 'done', direction: 'push', vm: 'vm1', guestPath: '/up', localPath: local, bytes: data.length });
    expect(upEvents.filter((e) => e.event === 'done')).toHaveLength(1);
    const stages = upEvents.filter((e) => e.event === 'progress').map((e) => e.stage);
    expect(stages[0]).toBe('upload');
    expect(stages.at(-1)).toBe('guest');
    expect(upEvents.filter((e) => e.event === 'progress').at(-1)).toEqual({ event: 'progress', stage: 'guest', bytes: data.length, totalBytes: data.length });
    expect(upEvents.find((e) => e.stage === 'upload' && e.bytes === data.length)).toBeDefined();

    const down = await vmgmt(['cp', 'vm1:/up', join(work, 'down'), '--json']);
    const downEvents = down.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(downEvents.map((e) => e.event)).toContain('ready');
    expect(downEvents.find((e) => e.event === 'ready')).toEqual({ event: 'ready', bytes: data.length, download: expect.stringMatching(/^\/v1\/transfers\/[0-9a-f]{32}$/) });
    expect(downEvents.filter((e) => e.stage === 'download').at(-1)).toEqual({ event: 'progress', stage: 'download', bytes: data.length, totalBytes: data.length });
    expect(downEvents.at(-1)).toEqual({ event: 'done', direction: 'pull', vm: 'vm1', guestPath: '/up', localPath: join(work, 'down'), bytes: data.length });
    expect(digest(await readFile(join(work, 'down')))).toBe(digest(data));

    manager.failCopy = new VmgmtError('AGENT_UNAVAILABLE', 'no guest agent is running in this VM');
    const failed = await vmgmt(['cp', local, 'vm1:/up', '--json']);
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout.trimEnd().split('\n').at(-1) ?? '')).toEqual({
      event: 'error',
      code: 'AGENT_UNAVAILABLE',
      message: 'no guest agent is running in this VM',
      details: {},
    });
    const usage = await vmgmt(['cp', local, '--json']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout)).toMatchObject({ event: 'error', code: 'USAGE' });
  });

  it('draws a progress bar on a terminal and nothing otherwise', async () => {
    const local = join(work, 'f');
    await writeFile(local, randomBytes(3 * 1024 * 1024));
    const tty = await vmgmt(['cp', local, 'vm1:/f'], { tty: true });
    expect(tty.code).toBe(0);
    const frames = tty.stderr.split('\r').filter(Boolean);
    expect(frames.length).toBeGreaterThanOrEqual(2);
    // The rate is '-' when the fake manager finishes a stage within the same millisecond.
    expect(frames.at(-1)).toMatch(/^guest +\[#+\] +100% {2}3\.0 MiB \/ 3\.0 MiB {2}(.*\/s|-)\x1b\[K\n$/);
    for (const f of frames) expect(f.replace(/\x1b\[K\n?$/, '').length).toBeLessThan(100);
    expect((await vmgmt(['cp', local, 'vm1:/f'])).stderr).toBe('');
  });

  it('exits 2 on usage errors', async () => {
    expect(await vmgmt(['cp', 'a', 'b'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/neither "a" nor "b" names a VM/) });
    expect((await vmgmt(['cp', './x', 'a:b'])).stderr).toMatch(/guest path "b" in "a:b" must be an absolute path .* written \.\/a:b/);
    const both = await vmgmt(['cp', 'vm1:/a', 'vm2:/b']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/both "vm1:\/a" and "vm2:\/b" name a VM/);
    const rel = await vmgmt(['cp', './x', 'vm1:tmp/x']);
    expect(rel.code).toBe(2);
    expect(rel.stderr).toMatch(/guest path "tmp\/x" in "vm1:tmp\/x" must be an absolute path/);
  });
});
