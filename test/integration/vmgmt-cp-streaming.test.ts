// `vmgmt cp` of a large file streams, both ways, through the real CLI, daemon, device and guest agent (issue 13:
// "a copy of a 1 GiB file starts moving into the guest at once and needs no host-side staging copy").
//
// What is shown, for a SIZE_BYTES file of random bytes, host -> guest and then guest -> host:
// - the bytes arrive intact: sha256 of the host file, of the guest's copy (computed in the guest), and of the
//   file pulled back;
// - the copy moves while it is still being read: for a push, the daemon's guest-stage progress (and, read in
//   the guest itself, the agent's temporary destination file) has bytes while the CLI process has read less
//   than the whole file (/proc/PID/io rchar counts every byte it read, its own start-up included, so
//   rchar < SIZE_BYTES means its source is not read to the end yet); for a pull, the CLI's partial local file
//   has bytes before the daemon logs that the guest copy ended;
// - no host-side staging copy: during each copy, no file under the daemon's state and runtime directories,
//   nor any file the daemon process has open (an unlinked temporary file included), grows by more than
//   STAGING_SLACK_BYTES;
// - the daemon's peak RSS (VmHWM, reset through /proc/PID/clear_refs just before each copy) grows by less
//   than RSS_LIMIT_BYTES, an eighth of the file; the CLI's peak RSS stays under a quarter of it.
//
// The guest destination: the test image's /tmp is a tmpfs of half the guest's memory, too small for 1 GiB,
// so the guest gets GUEST_MEMORY_MIB and the test mounts a tmpfs of its own (huge pages within size) that
// holds the file. `vmgmt cp` cannot write to /dev/null: the agent writes PATH.vmgmt-tmp and renames it over
// PATH, and only copies regular files out.
//
// Run time, measured on the 2-core TCG machine with other guests running: 32-53 s for the file, so the full
// 1 GiB is used; the guest's own sha256sum of it is the largest part (14-26 s), each copy 5-14 s.
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

const MiB = 1024 * 1024;
/** The size issue 13 names. */
const SIZE_BYTES = 1024 * MiB;
const GUEST_MEMORY_MIB = 2048;
const GUEST_DIR = '/mnt/cp-stream';
const GUEST_FILE = `${GUEST_DIR}/big.bin`;
const STAGING_SLACK_BYTES = 64 * MiB;
const RSS_LIMIT_BYTES = SIZE_BYTES / 8;
/** The CLI is a Node process of about 100 MB on its own (measured): it may not hold a quarter of the file. */
const CLI_RSS_LIMIT_BYTES = SIZE_BYTES / 4;
/** How often the copy is looked at while it runs. */
const SAMPLE_MS = 50;
const VM = 'it-cpstream';

/** sha256 of a file, read as a stream. */
function fileSha(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file, { highWaterMark: 4 * MiB })
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

/** Writes `size` random bytes to file; their sha256. */
function writeRandomFile(file: string, size: number): string {
  const h = createHash('sha256');
  const chunk = Buffer.allocUnsafe(16 * MiB);
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk.length, size - done);
      randomFillSync(chunk, 0, n);
      const part = chunk.subarray(0, n);
      h.update(part);
      for (let off = 0; off < n; ) off += writeSync(fd, part, off, n - off);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** A /proc/PID/status field in bytes (its kB figure). */
function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** The process's peak RSS so far, or 0 once it is gone. */
function peakRssOf(pid: number): number {
  try {
    return statusBytes(pid, 'VmHWM');
  } catch {
    return 0;
  }
}

/**
 * Every byte the live process has read with read(2)-like calls, files and sockets alike; undefined once it
 * has exited (its state, read after the figure, is checked: an exited process's figure says nothing).
 */
function bytesRead(pid: number): number | undefined {
  try {
    const m = /^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    const state = /^\d+ \(.*\) (\S)/s.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
    return m && state !== undefined && state !== 'Z' && state !== 'X' ? Number(m[1]) : undefined;
  } catch {
    return undefined; // gone
  }
}

/**
 * The size of every regular file that could hold a staged copy: those under `dirs`, and those the daemon has
 * open (by fd, so an unlinked one counts too).
 */
function candidateFiles(daemonPid: number, dirs: string[]): Map<string, number> {
  const sizes = new Map<string, number>();
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // gone meanwhile, or not made yet
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const st: Stats | undefined = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) sizes.set(p, st.size);
    }
  };
  dirs.forEach(walk);
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${daemonPid}/fd`);
  } catch {
    // the daemon is gone: the copy's own checks say so
  }
  for (const fd of fds) {
    try {
      const st = statSync(`/proc/${daemonPid}/fd/${fd}`);
      if (st.isFile()) sizes.set(`fd ${fd} -> ${readlinkSync(`/proc/${daemonPid}/fd/${fd}`)}`, st.size);
    } catch {
      // closed meanwhile
    }
  }
  return sizes;
}

/** Watches a copy for a staging file: any candidate file that grew by more than STAGING_SLACK_BYTES. */
class StagingWatch {
  readonly #baseline: Map<string, number>;
  readonly grown: string[] = [];
  largestGrowth = 0;
  constructor(
    private readonly daemonPid: number,
    private readonly dirs: string[],
  ) {
    this.#baseline = candidateFiles(daemonPid, dirs);
  }
  sample(): void {
    for (const [file, size] of candidateFiles(this.daemonPid, this.dirs)) {
      const growth = size - (this.#baseline.get(file) ?? 0);
      this.largestGrowth = Math.max(this.largestGrowth, growth);
      if (growth > STAGING_SLACK_BYTES && !this.grown.some((g) => g.startsWith(`${file}:`))) this.grown.push(`${file}: ${size} bytes`);
    }
  }
}

/** The daemon's memory around a copy: peak RSS from VmHWM (reset before), and the largest anonymous RSS sampled. */
class RssWatch {
  readonly startRss: number;
  readonly startAnon: number;
  peakAnon: number;
  constructor(private readonly pid: number) {
    // 5: reset the peak RSS (VmHWM) to the current RSS (Documentation/filesystems/proc.rst).
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    this.startRss = statusBytes(pid, 'VmRSS');
    this.startAnon = statusBytes(pid, 'RssAnon');
    this.peakAnon = this.startAnon;
  }
  sample(): void {
    this.peakAnon = Math.max(this.peakAnon, statusBytes(this.pid, 'RssAnon'));
  }
  /** Peak RSS over the copy less the RSS at its start. */
  peakGrowth(): number {
    return statusBytes(this.pid, 'VmHWM') - this.startRss;
  }
}

interface Progress {
  event: string;
  stage?: string;
  bytes?: number;
  totalBytes?: number;
}

/** The --json lines printed so far. */
const progressLines = (stdout: string): Progress[] =>
  stdout
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Progress);

const lastGuestBytes = (stdout: string): number =>
  progressLines(stdout)
    .filter((e) => e.event === 'progress' && e.stage === 'guest')
    .reduce((max, e) => Math.max(max, e.bytes ?? 0), 0);

describe(`vmgmt cp of ${SIZE_BYTES / MiB} MiB streams both ways`, () => {
  let d: DaemonFixture;
  let daemonPid: number;
  let source: string;
  let sourceSha: string;
  let startedMs = 0;
  const timings: Record<string, number> = {};
  const mark = (what: string, since: number): void => void (timings[what] = Date.now() - since);

  beforeAll(async () => {
    startedMs = Date.now();
    d = await DaemonFixture.start();
    daemonPid = d.daemonPid!;
    expect((await d.api('POST', '/v1/vms', { name: VM, accel: 'tcg', memoryMiB: GUEST_MEMORY_MIB })).status).toBe(201);
    expect((await d.api('POST', `/v1/vms/${VM}/start`)).status).toBe(200);
    let t = Date.now();
    source = path.join(d.baseDir, 'source.bin');
    sourceSha = writeRandomFile(source, SIZE_BYTES);
    mark('host file written and hashed', t);
    t = Date.now();
    // The agent is up once it has put a channel into AGENT mode.
    await d.waitForAgent(VM, 120_000);
    mark('guest agent up', t);
    const mounted = await d.guest(VM, `mkdir -p ${GUEST_DIR} && mount -t tmpfs -o size=${SIZE_BYTES / MiB + 64}m,huge=within_size tmpfs ${GUEST_DIR} && echo mounted`);
    expect(mounted.stdout.trim()).toBe('mounted');
  });

  afterAll(async () => {
    console.log(`vmgmt-cp-streaming timings (ms): ${JSON.stringify({ ...timings, total: Date.now() - startedMs })}`);
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('pushes into the guest while the CLI is still reading the file, with no staging copy and flat daemon memory', async () => {
    const staging = new StagingWatch(daemonPid, [d.stateDir, d.runtimeDir]);
    const rss = new RssWatch(daemonPid);
    const t = Date.now();
    let overlap: { afterMs: number; guestBytes: number; cliRead: number } | undefined;
    let guestSide: { tempFileBytes: number; cliRead: number } | undefined;
    let stdout = '';
    const cp = d.cliStreaming(['cp', '--json', source, `${VM}:${GUEST_FILE}`], (all) => (stdout = all));
    const cliPid = cp.child.pid!;
    let cliPeakRss = 0;
    let exited = false;
    void cp.done.then(() => (exited = true));
    const sampler = (async () => {
      while (!exited) {
        // Guest bytes first, then what the CLI has read: both only grow, so the pair shows a moment when
        // the guest had bytes and the CLI had not read its whole source.
        const guestBytes = lastGuestBytes(stdout);
        const cliRead = bytesRead(cliPid);
        if (!overlap && guestBytes > 0 && cliRead !== undefined && cliRead < SIZE_BYTES && !exited) overlap = { afterMs: Date.now() - t, guestBytes, cliRead };
        cliPeakRss = Math.max(cliPeakRss, peakRssOf(cliPid));
        staging.sample();
        rss.sample();
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    })();
    // Read in the guest: the agent's temporary destination has some bytes, and the CLI still reads.
    const guestProbe = (async () => {
      while (!exited && !guestSide) {
        const r = await d.guest(VM, `stat -c %s ${GUEST_FILE}.vmgmt-tmp 2>/dev/null || echo none`).catch(() => undefined);
        const tempFileBytes = Number(r?.stdout.trim());
        if (!Number.isSafeInteger(tempFileBytes) || tempFileBytes === 0 || tempFileBytes >= SIZE_BYTES) continue;
        const cliRead = bytesRead(cliPid);
        if (cliRead === undefined) return; // the CLI is done
        if (cliRead < SIZE_BYTES) guestSide = { tempFileBytes, cliRead };
      }
    })();
    const r = await cp.done;
    await Promise.all([sampler, guestProbe]);
    mark('push', t);
    expect(r.code, r.stderr).toBe(0);
    expect(progressLines(r.stdout).at(-1)).toMatchObject({ event: 'done', direction: 'push', bytes: SIZE_BYTES });
    console.log(`push: overlap ${JSON.stringify(overlap)}, guest side ${JSON.stringify(guestSide)}, largest file growth ${staging.largestGrowth}, RSS peak growth ${rss.peakGrowth()}, anon ${rss.startAnon}..${rss.peakAnon}, CLI peak RSS ${cliPeakRss}`);
    expect(overlap, 'the guest had bytes while the CLI was still reading its source').toBeDefined();
    expect(guestSide, "the guest's destination file had bytes while the CLI was still reading its source").toBeDefined();
    expect(staging.grown, 'no staging file').toEqual([]);
    expect(rss.peakGrowth()).toBeLessThan(RSS_LIMIT_BYTES);
    expect(rss.peakAnon - rss.startAnon).toBeLessThan(RSS_LIMIT_BYTES);
    expect(cliPeakRss).toBeGreaterThan(0);
    expect(cliPeakRss).toBeLessThan(CLI_RSS_LIMIT_BYTES);

    const h = Date.now();
    const inGuest = await d.guest(VM, `sha256sum ${GUEST_FILE}`, 170_000);
    mark('guest sha256sum', h);
    expect(inGuest.stdout.split(' ')[0]).toBe(sourceSha);
  });

  it('pulls to the host while the guest copy is still running, with no staging copy and flat daemon memory', async () => {
    const outDir = path.join(d.baseDir, 'pulled');
    const out = path.join(outDir, 'big.bin');
    mkdirSync(outDir);
    const staging = new StagingWatch(daemonPid, [d.stateDir, d.runtimeDir]);
    const rss = new RssWatch(daemonPid);
    const t = Date.now();
    let firstPart: { atMs: number; afterMs: number; bytes: number } | undefined;
    const cp = d.cliStreaming(['cp', '--json', `${VM}:${GUEST_FILE}`, out], () => {});
    const cliPid = cp.child.pid!;
    let cliPeakRss = 0;
    let exited = false;
    void cp.done.then(() => (exited = true));
    const sampler = (async () => {
      while (!exited) {
        if (!firstPart) {
          const atMs = Date.now();
          for (const name of readdirSync(outDir)) {
            if (!name.endsWith('.part')) continue;
            const bytes = statSync(path.join(outDir, name), { throwIfNoEntry: false })?.size ?? 0;
            if (bytes > 0 && bytes < SIZE_BYTES) firstPart = { atMs, afterMs: atMs - t, bytes };
          }
        }
        cliPeakRss = Math.max(cliPeakRss, peakRssOf(cliPid));
        staging.sample();
        rss.sample();
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    })();
    const r = await cp.done;
    await sampler;
    mark('pull', t);
    expect(r.code, r.stderr).toBe(0);
    expect(progressLines(r.stdout).at(-1)).toMatchObject({ event: 'done', direction: 'pull', bytes: SIZE_BYTES });
    // The daemon logs `file pulled` once the guest has committed the copy (and only then sends the last bytes).
    const pulledLine = await waitFor('the daemon to log the finished pull', () =>
      d.log.split('\n').find((l) => l.includes('"msg":"file pulled"') && l.includes(GUEST_FILE)), 10_000, 100);
    const copyEndedMs = Date.parse((JSON.parse(pulledLine) as { time: string }).time);
    console.log(`pull: first partial bytes ${JSON.stringify(firstPart)} ${firstPart ? copyEndedMs - firstPart.atMs : '-'} ms before the guest copy ended, largest file growth ${staging.largestGrowth}, RSS peak growth ${rss.peakGrowth()}, anon ${rss.startAnon}..${rss.peakAnon}, CLI peak RSS ${cliPeakRss}`);
    expect(firstPart, 'the local file had bytes while the copy ran').toBeDefined();
    expect(firstPart!.atMs, 'bytes reached the host before the guest copy ended').toBeLessThan(copyEndedMs);
    expect(staging.grown, 'no staging file').toEqual([]);
    expect(rss.peakGrowth()).toBeLessThan(RSS_LIMIT_BYTES);
    expect(rss.peakAnon - rss.startAnon).toBeLessThan(RSS_LIMIT_BYTES);
    expect(cliPeakRss).toBeGreaterThan(0);
    expect(cliPeakRss).toBeLessThan(CLI_RSS_LIMIT_BYTES);

    const h = Date.now();
    expect(await fileSha(out)).toBe(sourceSha);
    mark('host sha256 of the pulled file', h);
  });
});
