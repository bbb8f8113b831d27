// bench/file-transfer: host<->guest file throughput through the management device beside the channels
// users already have, measured in the same run and in the same guest: virtio-9p (msize 512000,
// cache=none) and qemu-ga (guest-file-read/write), on Debian's full kernel (bench/build-bench-image.sh,
// built here: `make test` never needs it). `make bench`.
//
// Guest-started rows are timed by the guest's clock around the whole command (vmgmt-guest, cp, dd alike);
// host-started rows (qemu-ga, the agent copy, `vmgmt cp`) by the host's. Phase 2 runs a real daemon with a
// VM of the same image and settings for `vmgmt cp` through the CLI and the cost of a CLI call (`vm ls`).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { guestRun, guestSeconds, mbps, median } from './bench-guest.js';
import { QgaClient } from './qga-client.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';
import { findRepoRoot } from '../orchestrator/vm/repo-root.js';
import { TEST_IMAGE_APPEND } from '../orchestrator/vm/test-image.js';
import { DaemonFixture } from '../test/support/daemon-fixture.js';

const FILE_MIB = Number(process.env.VMGMT_BENCH_MIB ?? 64);
const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 3);
const MEMORY_MIB = 1024;
const FILE_BYTES = FILE_MIB * 1024 * 1024;
/** qemu-ga's guest-file-read/write piece: 8 MiB (its own cap is 48 MiB; bigger pieces only grow its JSON). */
const QGA_CHUNK_BYTES = 8 * 1024 * 1024;
const CLI_CALLS = 7;

const repo = findRepoRoot();
const benchImageDir = path.join(repo, 'images/build-bench');

/** The guest settings both phases share: the tmpfs of /tmp with huge pages, the 9p mount, qemu-ga. */
const GUEST_SETUP = [
  'mount -o remount,huge=within_size /tmp',
  'modprobe virtio_pci && modprobe 9pnet_virtio && modprobe 9p && modprobe virtio_console && for i in 1 2 3 4 5 6 7 8 9 10; do [ -n "$(ls /sys/class/virtio-ports/)" ] && break; sleep 1; done',
  'mkdir -p /mnt/host && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none benchroot /mnt/host',
  'for d in /sys/class/virtio-ports/*; do [ "$(cat $d/name)" = org.qemu.guest_agent.0 ] && port=/dev/${d##*/}; done; ' +
    'LD_LIBRARY_PATH=/lib/x86_64-linux-gnu /usr/sbin/qemu-ga -d -m virtio-serial -p "$port" -f /run/qemu-ga.pid -t /run',
].join(' && ');

interface Samples {
  [key: string]: number[];
}

function add(s: Samples, key: string, value: number): void {
  (s[key] ??= []).push(value);
}

const rate = (seconds: number): number => mbps(FILE_BYTES, seconds);

async function hostSeconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

function field(out: string, re: RegExp, what: string): number {
  const m = re.exec(out);
  if (!m) throw new Error(`no ${what} in:\n${out}`);
  return Number(m[1]);
}

/** Phase 1: one guest, every channel. */
async function measureGuest(root: string, base: string, s: Samples, hostSum: string): Promise<void> {
  const qgaSocket = path.join(base, 'qga.sock');
  let vm: DeviceVm | undefined;
  let qga: QgaClient | undefined;
  try {
    vm = await startDeviceVm({
      name: 'bench',
      accel: 'tcg',
      memoryMiB: MEMORY_MIB,
      boot: { kernelPath: path.join(benchImageDir, 'vmlinuz'), initrdPath: path.join(benchImageDir, 'initramfs.cpio.gz'), append: TEST_IMAGE_APPEND },
      extraArgs: [
        '-fsdev', `local,id=benchfs,path=${root},security_model=none`,
        '-device', 'virtio-9p-pci,fsdev=benchfs,mount_tag=benchroot',
        '-chardev', `socket,id=qga0,path=${qgaSocket},server=on,wait=off`,
        '-device', 'virtio-serial-pci',
        '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      ],
      files: { root, quotaBytes: 8 * FILE_BYTES, maxFileBytes: 2 * FILE_BYTES },
    });
    await guestRun(vm, GUEST_SETUP);
    qga = await QgaClient.connect(qgaSocket, 60_000);
    const kernel = (await guestRun(vm, 'uname -r')).trim();
    console.log(`guest up: kernel ${kernel}, /tmp tmpfs huge=within_size, 9p msize 512000 cache=none, qemu-ga ready`);
    const data = readFileSync(path.join(root, 'big.bin'));

    for (let i = 0; i < REPS; i++) {
      const mem = await guestRun(vm, `vmgmt-guest bench memcpy --mib ${FILE_MIB} --reps 1`);
      add(s, 'memcpy to BAR2', field(mem, /to_bar_MBps=([\d.]+)/, 'memcpy to BAR2'));
      add(s, 'memcpy from BAR2', field(mem, /from_bar_MBps=([\d.]+)/, 'memcpy from BAR2'));

      // host -> guest, into a tmpfs file
      await guestRun(vm, 'rm -f /tmp/big /tmp/b9');
      add(s, 'get vmgmt', rate(await guestSeconds(vm, 'vmgmt-guest file get big.bin /tmp/big -q')));
      add(s, 'get 9p', rate(await guestSeconds(vm, 'cp /mnt/host/big.bin /tmp/b9')));
      // guest -> host, out of a tmpfs file; both end with the host file fsynced
      add(s, 'put vmgmt', rate(await guestSeconds(vm, 'vmgmt-guest file put /tmp/big up.bin -q')));
      add(s, 'put 9p', rate(await guestSeconds(vm, 'dd if=/tmp/b9 of=/mnt/host/up9.bin bs=1M conv=fsync')));
      // to /dev/null and from nothing (vmgmt: a sparse file, whose pages are the zero page)
      add(s, 'get null vmgmt', rate(await guestSeconds(vm, 'vmgmt-guest file get big.bin - -q')));
      add(s, 'get null 9p', rate(await guestSeconds(vm, 'dd if=/mnt/host/big.bin of=/dev/null bs=1M')));
      await guestRun(vm, `rm -f /tmp/sparse && truncate -s ${FILE_BYTES} /tmp/sparse`);
      add(s, 'put zero vmgmt', rate(await guestSeconds(vm, 'vmgmt-guest file put /tmp/sparse zero.bin -q')));
      add(s, 'put zero 9p', rate(await guestSeconds(vm, `dd if=/dev/zero of=/mnt/host/zero9.bin bs=1M count=${FILE_MIB} conv=fsync`)));
      // the guest's own tmpfs
      add(s, 'tmpfs write', rate(await guestSeconds(vm, `rm -f /tmp/dd && dd if=/dev/zero of=/tmp/dd bs=1M count=${FILE_MIB}`)));
      add(s, 'tmpfs read', rate(await guestSeconds(vm, 'dd if=/tmp/dd of=/dev/null bs=1M')));
      await guestRun(vm, 'rm -f /tmp/dd /tmp/sparse');

      // host-started: qemu-ga and the agent copy (what `vmgmt cp` runs in the daemon), same file
      await guestRun(vm, 'rm -f /tmp/ga /tmp/ag');
      add(s, 'cp in qemu-ga', rate(await hostSeconds(() => qga!.writeFile('/tmp/ga', data, QGA_CHUNK_BYTES))));
      let back: Buffer | undefined;
      add(s, 'cp out qemu-ga', rate(await hostSeconds(async () => (back = await qga!.readFile('/tmp/big', QGA_CHUNK_BYTES)))));
      if (createHash('sha256').update(back!).digest('hex') !== hostSum) throw new Error('qemu-ga read back a different file');
      const inFd = openSync(path.join(root, 'big.bin'), 'r');
      try {
        add(s, 'cp in agent', rate(await hostSeconds(() => vm!.agent.copy({ direction: 'to-guest', hostFd: inFd, sizeBytes: FILE_BYTES, guestPath: '/tmp/ag', timeoutMs: 600_000 }))));
      } finally {
        closeSync(inFd);
      }
      const outPath = path.join(base, 'agent-out.bin');
      const outFd = openSync(outPath, 'w+');
      try {
        add(s, 'cp out agent', rate(await hostSeconds(() => vm!.agent.copy({ direction: 'from-guest', hostFd: outFd, sizeBytes: 0, maxBytes: 2 * FILE_BYTES, guestPath: '/tmp/big', timeoutMs: 600_000 }))));
      } finally {
        closeSync(outFd);
      }
      if (statSync(outPath).size !== FILE_BYTES) throw new Error('the agent copy out of the guest is short');
      rmSync(outPath);
    }
    // Integrity, outside the timed runs: every copy in the guest and on the host is the file.
    const sums = (await guestRun(vm, 'sha256sum /tmp/big /tmp/b9 /tmp/ga /tmp/ag')).trim().split('\n').map((l) => l.split(' ')[0]);
    const hostSums = ['up.bin', 'up9.bin'].map((n) => createHash('sha256').update(readFileSync(path.join(root, n))).digest('hex'));
    if ([...sums, ...hostSums].some((x) => x !== hostSum)) throw new Error(`integrity check failed: host ${hostSum}, copies ${[...sums, ...hostSums].join(' ')}`);
  } finally {
    qga?.close();
    await vm?.close();
  }
}

/** Phase 2: a real daemon with a VM of the same image and settings: `vmgmt cp` through the CLI, and `vm ls`. */
async function measureCli(root: string, base: string, s: Samples, hostSum: string): Promise<void> {
  const daemon = await DaemonFixture.start({ readyTimeoutMs: 60_000 });
  try {
    const def = {
      name: 'benchcp',
      memoryMiB: MEMORY_MIB,
      accel: 'tcg',
      boot: { kernel: path.join(benchImageDir, 'vmlinuz'), initrd: path.join(benchImageDir, 'initramfs.cpio.gz') },
    };
    const defPath = path.join(base, 'benchcp.json');
    writeFileSync(defPath, JSON.stringify(def));
    const ok = (r: { code: number; stdout: string; stderr: string }, what: string): void => {
      if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
    };
    ok(await daemon.cli('vm', 'create', '-f', defPath), 'vm create');
    ok(await daemon.cli('vm', 'start', 'benchcp'), 'vm start');
    await daemon.waitFor('benchcp', (vm) => vm.state === 'running', 120_000);
    await daemon.guest('benchcp', 'mount -o remount,huge=within_size /tmp', 120_000);
    const src = path.join(root, 'big.bin');
    const back = path.join(base, 'cp-back.bin');
    // The agent may still be starting: one small copy first, untimed.
    writeFileSync(path.join(base, 'warm'), 'x');
    ok(await daemon.cli('cp', path.join(base, 'warm'), 'benchcp:/tmp/warm'), 'warm-up cp');
    for (let i = 0; i < REPS; i++) {
      let r: { code: number; stdout: string; stderr: string } | undefined;
      add(s, 'cp in vmgmt', rate(await hostSeconds(async () => (r = await daemon.cli('cp', src, 'benchcp:/tmp/cp.bin')))));
      ok(r!, 'vmgmt cp into the guest');
      rmSync(back, { force: true });
      add(s, 'cp out vmgmt', rate(await hostSeconds(async () => (r = await daemon.cli('cp', 'benchcp:/tmp/cp.bin', back)))));
      ok(r!, 'vmgmt cp out of the guest');
      if (createHash('sha256').update(readFileSync(back)).digest('hex') !== hostSum) throw new Error('vmgmt cp brought back a different file');
    }
    // A CLI call that does little: process start, module loading, one API round trip.
    for (let i = 0; i < CLI_CALLS; i++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [daemon.cliPath, 'vm', 'ls'], { env: { ...process.env, VMGMT_SOCKET: daemon.socketPath }, encoding: 'utf8' });
      add(s, 'vm ls ms', Math.round(performance.now() - t0));
      if (r.status !== 0) throw new Error(`vm ls failed: ${r.stderr}`);
    }
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    add(s, 'node start ms', Math.round(performance.now() - t0));
  } finally {
    await daemon.cli('vm', 'rm', 'benchcp', '--force').catch(() => undefined);
    await daemon.cleanup();
  }
}

function table(s: Samples): string {
  const m = (k: string): number | undefined => (s[k] ? median(s[k]!) : undefined);
  const fmt = (x: number | undefined, digits = 1): string => (x === undefined ? '-' : x.toFixed(digits));
  const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}x`);
  const rows: [string, number | undefined, number | undefined, number | undefined, string][] = [
    ['host -> guest, into a tmpfs file (guest-started)', m('get vmgmt'), m('get 9p'), undefined, 'target >= 2x 9p'],
    ['guest -> host, out of a tmpfs file (host fsync)', m('put vmgmt'), m('put 9p'), undefined, 'target >= 2x 9p'],
    ['host -> guest, to /dev/null', m('get null vmgmt'), m('get null 9p'), undefined, `${fmt((100 * m('get null vmgmt')!) / m('memcpy from BAR2')!, 0)}% of memcpy from BAR2 (target >= 90%)`],
    ['guest -> host, from /dev/zero (vmgmt: a sparse file)', m('put zero vmgmt'), m('put zero 9p'), undefined, `${fmt((100 * m('put zero vmgmt')!) / m('memcpy to BAR2')!, 0)}% of memcpy to BAR2`],
    ['host-started copy into the guest: vmgmt cp (CLI)', m('cp in vmgmt'), undefined, m('cp in qemu-ga'), 'target >= 50x qemu-ga'],
    ['host-started copy out of the guest: vmgmt cp (CLI)', m('cp out vmgmt'), undefined, m('cp out qemu-ga'), 'target >= 50x qemu-ga'],
    ['host-started copy into the guest: agent copy (daemon side of cp)', m('cp in agent'), undefined, m('cp in qemu-ga'), ''],
    ['host-started copy out of the guest: agent copy (daemon side of cp)', m('cp out agent'), undefined, m('cp out qemu-ga'), ''],
    ['guest tmpfs write (dd /dev/zero), for reference', m('tmpfs write'), undefined, undefined, ''],
    ['guest tmpfs read (dd to /dev/null), for reference', m('tmpfs read'), undefined, undefined, ''],
    ['raw memcpy guest RAM -> BAR2', m('memcpy to BAR2'), undefined, undefined, ''],
    ['raw memcpy BAR2 -> guest RAM', m('memcpy from BAR2'), undefined, undefined, ''],
  ];
  const head = ['', 'vmgmt MB/s', 'virtio-9p MB/s', 'qemu-ga MB/s', 'vmgmt/9p', 'vmgmt/qemu-ga', 'note'];
  const body = rows.map(([label, v, p, q, note]) => [label, fmt(v), fmt(p), fmt(q), ratio(v, p), ratio(v, q), note]);
  body.push([`CLI call that does little: vmgmt vm ls (median of ${CLI_CALLS}), ms`, fmt(m('vm ls ms'), 0), '-', '-', '-', '-', `target <= 150 ms; node -e 0 alone: ${fmt(m('node start ms'), 0)} ms`]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  console.log('building the bench image (Debian full kernel, 9p, virtio_console, qemu-ga) if needed...');
  execFileSync('bash', [path.join(repo, 'bench/build-bench-image.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const base = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-'));
  const root = path.join(base, 'root');
  const s: Samples = {};
  try {
    mkdirSync(root);
    const data = randomBytes(FILE_BYTES);
    writeFileSync(path.join(root, 'big.bin'), data);
    const hostSum = createHash('sha256').update(data).digest('hex');
    console.log(`phase 1: one TCG guest (1 vCPU, ${MEMORY_MIB} MiB, the launcher's CPU model) with vmgmt, virtio-9p and qemu-ga; ${FILE_MIB} MiB file, ${REPS} runs`);
    await measureGuest(root, base, s, hostSum);
    console.log('phase 2: a vmgmt daemon with a VM of the same image and settings: vmgmt cp through the CLI, vm ls');
    await measureCli(root, base, s, hostSum);
    console.log(`\nfile transfer, ${FILE_MIB} MiB file, median of ${REPS} runs (vm ls: ${CLI_CALLS}), TCG, sha256 verified outside the timed runs:\n`);
    console.log(table(s));
    console.log(`\nruns: ${Object.entries(s).map(([k, v]) => `${k} ${v.join('/')}`).join('; ')}`);
    console.log('Guest-started rows are timed by the guest around the whole command (vmgmt-guest, cp or dd, process start included);');
    console.log('host-started rows by the host around the whole copy (vmgmt cp: the CLI process, its API call, the daemon and the guest agent).');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
