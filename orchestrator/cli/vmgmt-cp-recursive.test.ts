// `vmgmt cp -r` end to end on the host side: runCli against the real API server on a UNIX socket, backed by
// FakeVmManager's in-memory guest files (the guest side is test/integration/vmgmt-cp-recursive.test.ts).
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeVmManager } from '../api/fake-vm-manager.js';
import { CliHarness } from './cli-test-harness.js';

let h: CliHarness | undefined;
let dir: string;
let work: string;
let manager: FakeVmManager;

beforeEach(async () => {
  h = await CliHarness.start();
  ({ dir, work, manager } = h);
});

afterEach(async () => {
  await h?.close();
  h = undefined;
});

const vmgmt = (args: string[], opts: { tty?: boolean } = {}) => h!.vmgmt(args, opts);

describe('vmgmt cp -r', () => {
  it('uploads a tree file by file, making guest directories, and skips a local symlink with a warning', async () => {
    const src = join(work, 'site');
    await mkdir(join(src, 'css', 'deep'), { recursive: true });
    const a = randomBytes(1000);
    await writeFile(join(src, 'index.html'), a);
    await writeFile(join(src, 'css', 'deep', 'x.css'), 'x');
    await symlink('/etc/passwd', join(src, 'pw'));
    const run = await vmgmt(['cp', '-r', src, 'vm1:/srv/']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe(`vmgmt: warning: skipped ${join(src, 'pw')}: it is a symlink: not followed and not copied\n`);
    expect(run.stdout).toMatch(/^copied .*site to vm1:\/srv\/site \(2 files, 3 directories, .*, 1 skipped\)\n$/);
    expect([...manager.guestDirs].sort()).toEqual(['/srv/site', '/srv/site/css', '/srv/site/css/deep']);
    expect(Buffer.from(manager.guestFiles.get('/srv/site/index.html')!).equals(a)).toBe(true);
    expect(manager.guestFiles.has('/srv/site/pw')).toBe(false);
  });

  it('downloads a tree into an existing directory under its own name', async () => {
    manager.guestFiles.set('/var/log/app/a.log', new TextEncoder().encode('a'));
    manager.guestFiles.set('/var/log/app/old/b.log', new TextEncoder().encode('bb'));
    const run = await vmgmt(['cp', '--json', '-r', 'vm1:/var/log/app', work]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.event === 'file')).toEqual([
      { event: 'file', path: 'a.log', index: 1, total: 2, sizeBytes: 1, doneBytes: 0, totalBytes: 3 },
      { event: 'file', path: 'old/b.log', index: 2, total: 2, sizeBytes: 2, doneBytes: 1, totalBytes: 3 },
    ]);
    expect(lines.at(-1)).toEqual({ event: 'done', direction: 'pull', recursive: true, vm: 'vm1', guestPath: '/var/log/app', localPath: join(work, 'app'), files: 2, dirs: 2, skipped: 0, bytes: 3 });
    expect(await readFile(join(work, 'app', 'old', 'b.log'), 'utf8')).toBe('bb');
  });

  it('shows overall progress per file on a terminal', async () => {
    manager.guestFiles.set('/t/x', new Uint8Array(2048));
    manager.guestFiles.set('/t/y', new Uint8Array(1024));
    const run = await vmgmt(['cp', '-r', 'vm1:/t', join(work, 't')], { tty: true });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('[1/2 0 B of 3.0 KiB] x\n');
    expect(run.stderr).toContain('[2/2 2.0 KiB of 3.0 KiB] y\n');
  });

  it('refuses to write through a symlink already in the destination, and nothing lands where it points', async () => {
    manager.guestFiles.set('/g/sub/f', new TextEncoder().encode('data'));
    const dest = join(work, 'dest');
    const elsewhere = join(dir, 'elsewhere');
    // dest exists: the copy goes to dest/g, which is there already, with a symlink where sub/ comes.
    await mkdir(join(dest, 'g'), { recursive: true });
    await mkdir(elsewhere);
    await symlink(elsewhere, join(dest, 'g', 'sub'));
    const run = await vmgmt(['cp', '-r', 'vm1:/g', dest]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/cannot copy into .*dest\/g\/sub: it is a symlink \(not followed\)/);
    expect(await readdir(elsewhere)).toEqual([]);
    expect((await lstat(join(dest, 'g', 'sub'))).isSymbolicLink()).toBe(true);
  });

  it('a directory without -r still says to use -r, and -r of a file says to drop it', async () => {
    expect((await vmgmt(['cp', 'vm1:/etc/', join(work, 'x')])).stderr).toMatch(/vmgmt cp -r copies directories/);
    await writeFile(join(work, 'plain'), 'p');
    expect((await vmgmt(['cp', '-r', join(work, 'plain'), 'vm1:/tmp/p'])).stderr).toMatch(/it is not a directory \(copy a file without -r\)/);
  });
});
