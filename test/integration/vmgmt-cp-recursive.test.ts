// `vmgmt cp -r` both ways through the real CLI, the daemon, the device and the guest agent of the test image;
// the guest's hostile entries (a symlink, a fifo, a name with a control character) are made with shell commands.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Every file under root, as relative path → sha256; directories as path → 'dir'. */
function localTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(root, r));
      if (st.isDirectory()) {
        out[r] = 'dir';
        walk(r);
      } else out[r] = st.isFile() ? sha(readFileSync(path.join(root, r))) : 'other';
    }
  };
  walk('');
  return out;
}

describe('vmgmt cp -r', () => {
  let d: DaemonFixture;
  const vmgmt = (...args: string[]) => d.cli(...args);
  const VM = 'it-cpr';
  const MAX_DEPTH = 4;
  const MAX_PULL = 8 * 1024 * 1024;
  const MAX_ENTRIES = 40;

  beforeAll(async () => {
    d = await DaemonFixture.start({ config: { transfers: { maxTreeDepth: MAX_DEPTH, maxTreeEntries: MAX_ENTRIES, maxPullBytes: MAX_PULL } } });
    expect((await d.api('POST', '/v1/vms', { name: VM, accel: 'tcg', memoryMiB: 512 })).status).toBe(201);
    expect((await d.api('POST', '/v1/vms/it-cpr/start')).status).toBe(200);
    await d.waitForAgent(VM);
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('copies a nested tree into the guest and back out intact', async () => {
    const src = path.join(d.baseDir, 'src-tree');
    mkdirSync(path.join(src, 'sub1', 'sub2', 'sub3'), { recursive: true });
    mkdirSync(path.join(src, 'emptydir'));
    writeFileSync(path.join(src, 'a.txt'), 'hello tree\n');
    writeFileSync(path.join(src, 'sub1', 'b.bin'), randomBytes(100_000));
    writeFileSync(path.join(src, 'sub1', 'sub2', 'c.bin'), randomBytes(3 * 1024 * 1024 + 7));
    writeFileSync(path.join(src, 'sub1', 'sub2', 'sub3', 'empty'), '');
    const want = localTree(src);

    const up = await vmgmt('cp', '-r', src, `${VM}:/tmp/tree`);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/copied .* \(4 files, 5 directories/);
    const inGuest = await d.guest(VM, 'cd /tmp/tree && find . -type f | sort | xargs sha256sum; find . -type d | sort');
    for (const [rel, hash] of Object.entries(want)) {
      if (hash === 'dir') expect(inGuest.stdout).toContain(`./${rel}\n`);
      else expect(inGuest.stdout).toContain(`${hash}  ./${rel}\n`);
    }

    // A guest file's permission bits come back (within the umask): an executable stays executable.
    await d.guest(VM, 'chmod 755 /tmp/tree/a.txt && chmod 4755 /tmp/tree/sub1/b.bin');
    const out = path.join(d.baseDir, 'out-tree');
    const down = await vmgmt('cp', '--json', '-r', `${VM}:/tmp/tree`, out);
    expect(down.code, down.stderr).toBe(0);
    const events = down.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; path?: string });
    expect(events.filter((e) => e.event === 'file').map((e) => e.path).sort()).toEqual(['a.txt', 'sub1/b.bin', 'sub1/sub2/c.bin', 'sub1/sub2/sub3/empty']);
    expect(events.at(-1)).toMatchObject({ event: 'done', direction: 'pull', recursive: true, files: 4, dirs: 5, skipped: 0 });
    expect(localTree(out)).toEqual(want);
    const umask = process.umask(0o022);
    process.umask(umask);
    expect(lstatSync(path.join(out, 'a.txt')).mode & 0o7777).toBe(0o755 & ~umask);
    expect(lstatSync(path.join(out, 'sub1', 'b.bin')).mode & 0o7777).toBe(0o755 & ~umask); // never setuid
    // No temporary file left anywhere in the copy.
    expect(Object.keys(localTree(out)).filter((n) => n.includes('.part'))).toEqual([]);
  });

  it('skips a guest symlink and fifo and refuses a name with a control character, each said, nothing outside the destination', async () => {
    const made = await d.guest(
      VM,
      "mkdir -p /tmp/h/d && echo ok > /tmp/h/ok && echo inner > /tmp/h/d/inner && ln -s /etc /tmp/h/link && ln -s ../../../../../../tmp/escape /tmp/h/d/up && mkfifo /tmp/h/fifo && touch \"/tmp/h/$(printf 'bad\\001name')\" && ls /tmp/h | wc -l",
    );
    expect(made.stdout.trim()).toBe('5');
    const before = readdirSync(d.baseDir).sort();
    const out = path.join(d.baseDir, 'hostile');
    const r = await vmgmt('cp', '-r', `${VM}:/tmp/h`, out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: skipped \/tmp\/h\/link: it is a symlink: not followed and not copied/);
    expect(r.stderr).toMatch(/warning: skipped \/tmp\/h\/d\/up: it is a symlink/);
    expect(r.stderr).toMatch(/warning: skipped \/tmp\/h\/fifo: it is a fifo: skipped/);
    expect(r.stderr).toMatch(/warning: skipped an entry of \/tmp\/h: the name contains a control character \("bad\\u0001name"\)/);
    expect(r.stdout).toMatch(/2 files, 2 directories, .*4 skipped/);
    expect(localTree(out)).toEqual({ d: 'dir', 'd/inner': sha(Buffer.from('inner\n')), ok: sha(Buffer.from('ok\n')) });
    expect(readdirSync(d.baseDir).sort()).toEqual([...before, 'hostile'].sort());
    expect(existsSync('/tmp/escape')).toBe(false);
    // The copied directory itself being a symlink is refused too, not followed.
    const viaLink = await vmgmt('cp', '-r', `${VM}:/tmp/h/link`, path.join(d.baseDir, 'via-link'));
    expect(viaLink.code).not.toBe(0);
    expect(viaLink.stderr).toMatch(/could not list \/tmp\/h\/link: not a directory/);
    expect(existsSync(path.join(d.baseDir, 'via-link'))).toBe(false);
  });

  it('refuses a guest tree deeper than transfers.maxTreeDepth with its own message, writing nothing', async () => {
    await d.guest(VM, 'mkdir -p /tmp/deep/1/2/3/4/5/6 && echo x > /tmp/deep/1/2/3/4/5/6/f');
    const out = path.join(d.baseDir, 'deep');
    const r = await vmgmt('cp', '-r', `${VM}:/tmp/deep`, out);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`deeper than ${MAX_DEPTH} levels at 1/2/3/4/5 \\(transfers\\.maxTreeDepth in the daemon's config\\)`));
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a guest tree with more than transfers.maxTreeEntries entries with its own message, writing nothing', async () => {
    await d.guest(VM, 'mkdir -p /tmp/wide/sub && for i in $(seq 1 30); do : > /tmp/wide/f$i; : > /tmp/wide/sub/g$i; done');
    const out = path.join(d.baseDir, 'wide');
    const r = await vmgmt('cp', '-r', `${VM}:/tmp/wide`, out);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`the guest tree /tmp/wide has more than ${MAX_ENTRIES} entries \\(transfers\\.maxTreeEntries in the daemon's config\\)`));
    expect(existsSync(out)).toBe(false);
  });

  it('a file the host refuses in the middle of a tree stops the copy: the files before it are whole, no partial file anywhere', async () => {
    await d.guest(VM, 'mkdir -p /tmp/mid && echo first > /tmp/mid/a && head -c 9437184 /dev/urandom > /tmp/mid/b.big && echo last > /tmp/mid/c');
    const out = path.join(d.baseDir, 'mid');
    const r = await vmgmt('cp', '-r', `${VM}:/tmp/mid`, out);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\/tmp\/mid\/b\.big is larger than the host takes: at most 8388608 bytes/);
    expect(readdirSync(out).sort()).toEqual(['a']);
    expect(readFileSync(path.join(out, 'a'), 'utf8')).toBe('first\n');
  });

  it('a file in the way of a guest directory stops the copy in words, and the guest keeps no temp file', async () => {
    await d.guest(VM, 'mkdir -p /tmp/clash && echo file > /tmp/clash/sub');
    const src = path.join(d.baseDir, 'clash-src');
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'sub', 'x'), 'x');
    const r = await vmgmt('cp', '-r', src, `${VM}:/tmp/clash`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot make the guest directory \/tmp\/clash\/sub: something that is not a directory is there/);
    const left = await d.guest(VM, 'ls -a /tmp/clash');
    expect(left.stdout.split('\n').filter((n) => n.includes('vmgmt-tmp'))).toEqual([]);
  });
});
