// bench/chat --cluster: the same chat traffic between VMs on one host and between two hosts in one run.
// Two cluster hubs (two "hosts", as two daemons would hold them) in this process, joined through a real
// nats-server on loopback with the per-host users and permissions of the README; three TCG guests: a and b
// on host X, c on host Y. b and c each run a sink and an echo listener. Figures: messages/s from a to b's
// sink (same host) and to c's sink (across hosts), the guest's call round trip (a process per call), and the
// host-side call round trip (a host name on X calling a listener on b and on c that answers at once, without
// --exec, timed in this process). Same-host and cross-host rounds alternate.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nkeys } from 'nats';
import { silentLogger } from '../device-backend/core/core-logger.js';
import { brokerConfig } from '../device-backend/services/chat/cluster/broker-config.js';
import { ClusterChatHub } from '../device-backend/services/chat/cluster/cluster-chat-hub.js';
import { LocalChatHub } from '../device-backend/services/chat/local-chat-hub.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';
import { guestRun, guestSeconds, median } from './bench-guest.js';

/** Debian installs it in /usr/sbin, which a non-login PATH may lack. */
const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
const SMALL = Number(process.env.VMGMT_BENCH_CHAT_SMALL ?? 5_000);
const CALLS = Number(process.env.VMGMT_BENCH_CHAT_CALLS ?? 50);
const HOST_CALLS = Number(process.env.VMGMT_BENCH_CHAT_HOST_CALLS ?? 300);
const PORT = 14500 + (process.pid % 400);
const BUCKET = 'bench-chat';

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitLines(vm: DeviceVm, file: string, n: number): Promise<void> {
  await until(`${n} lines in ${file}`, async () => Number((await guestRun(vm, `wc -l < ${file}`)).trim()) >= n, 600_000);
}

function startBroker(dir: string, users: { host: string; publicKey: string }[]): Promise<ChildProcess> {
  writeFileSync(path.join(dir, 'nats.conf'), brokerConfig({ listen: `127.0.0.1:${PORT}`, storeDir: path.join(dir, 'js'), bucket: BUCKET, users }));
  const child = spawn(NATS_SERVER, ['-c', path.join(dir, 'nats.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.includes('Server is ready')) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}:\n${out}`)));
  });
}

export async function clusterBench(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-cluster-'));
  const hosts = ['bx', 'by'].map((host) => {
    const u = nkeys.createUser();
    const file = path.join(dir, `${host}.nk`);
    writeFileSync(file, `${new TextDecoder().decode(u.getSeed())}\n`, { mode: 0o600 });
    return { host, publicKey: u.getPublicKey(), file };
  });
  let broker: ChildProcess | undefined;
  const hubs: ClusterChatHub[] = [];
  const vms: DeviceVm[] = [];
  try {
    broker = await startBroker(dir, hosts);
    for (const h of hosts) {
      const local = new LocalChatHub({ log: silentLogger, hostId: h.host });
      const hub = new ClusterChatHub({ local, log: silentLogger, url: `nats://127.0.0.1:${PORT}`, host: h.host, credentialsFile: h.file, bucket: BUCKET, heartbeatMs: 1000, leaseMs: 4000, requestTimeoutMs: 5000, maxInFlight: 1024 });
      hub.start();
      hubs.push(hub);
    }
    const [x, y] = hubs as [ClusterChatHub, ClusterChatHub];
    await until('both hubs connected', () => x.connected && y.connected);
    console.log('booting three TCG guests (1 vCPU each): a and b on host X, c on host Y...');
    const a = await startDeviceVm({ name: 'bench-cl-a', accel: 'tcg', chat: { hub: x, group: 'bench' } });
    vms.push(a);
    const b = await startDeviceVm({ name: 'bench-cl-b', accel: 'tcg', chat: { hub: x, group: 'bench' } });
    vms.push(b);
    const c = await startDeviceVm({ name: 'bench-cl-c', accel: 'tcg', chat: { hub: y, group: 'bench' } });
    vms.push(c);
    await guestRun(b, 'vmgmt-guest chat register sink-b > /tmp/sink.out 2>/dev/null & vmgmt-guest chat listen echo-b --exec cat > /dev/null 2>&1 & vmgmt-guest chat listen quick-b > /dev/null 2>&1 & echo ok');
    await guestRun(c, 'vmgmt-guest chat register sink-c > /tmp/sink.out 2>/dev/null & vmgmt-guest chat listen echo-c --exec cat > /dev/null 2>&1 & vmgmt-guest chat listen quick-c > /dev/null 2>&1 & echo ok');
    const viewer = { vm: null, name: 'bench', group: undefined };
    await until('every name seen on host X', () => ['sink-b', 'echo-b', 'quick-b', 'sink-c', 'echo-c', 'quick-c'].every((n) => x.peers(viewer).some((p) => p.name === n)));

    const messages = async (to: DeviceVm, sink: string): Promise<number> => {
      await guestRun(to, ': > /tmp/sink.out');
      const s = await guestSeconds(a, `seq -w 1 ${SMALL} | sed 's/^/m/' | vmgmt-guest chat send ${sink} - --lines`);
      await waitLines(to, '/tmp/sink.out', SMALL);
      return SMALL / s;
    };
    // Rounds alternate same host and across hosts, so neither side gets the warm-up or a quieter moment.
    const ROUNDS = 5;
    const guestCalls = async (echo: string, n: number): Promise<number> =>
      guestSeconds(a, `i=0; while [ $i -lt ${n} ]; do vmgmt-guest chat call ${echo} ping > /dev/null || exit 1; i=$((i+1)); done`);
    const ops = x.registerHost('bench-ops', () => undefined);
    const data = new TextEncoder().encode('x'.repeat(64));
    const hostCall = async (quick: string): Promise<number> => {
      const t0 = process.hrtime.bigint();
      const r = await ops.call(quick, data, 10_000);
      if (!r.ok) throw new Error(`call ${quick}: ${r.code} ${r.reason}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const pct = (xs: number[], p: number): number => [...xs].sort((q, r) => q - r)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

    const sameMsgs = await messages(b, 'sink-b');
    const crossMsgs = await messages(c, 'sink-c');
    let sameGuest = 0;
    let crossGuest = 0;
    for (let r = 0; r < ROUNDS; r++) {
      sameGuest += await guestCalls('echo-b', CALLS / ROUNDS);
      crossGuest += await guestCalls('echo-c', CALLS / ROUNDS);
    }
    const sameCall = (sameGuest / CALLS) * 1000;
    const crossCall = (crossGuest / CALLS) * 1000;
    const sameTimes: number[] = [];
    const crossTimes: number[] = [];
    for (let i = 0; i < HOST_CALLS; i++) {
      sameTimes.push(await hostCall('quick-b'));
      crossTimes.push(await hostCall('quick-c'));
    }
    ops.close();
    const sameHost = { median: median(sameTimes), p99: pct(sameTimes, 0.99) };
    const crossHost = { median: median(crossTimes), p99: pct(crossTimes, 0.99) };

    const rows: [string, string, string, string][] = [
      ['', 'same host', 'across hosts', 'across / same'],
      [`one-way messages, 64 B lines (${SMALL})`, `${Math.round(sameMsgs)} msg/s`, `${Math.round(crossMsgs)} msg/s`, `${(crossMsgs / sameMsgs).toFixed(2)}x`],
      [`guest call to an --exec cat listener (${CALLS})`, `${sameCall.toFixed(1)} ms`, `${crossCall.toFixed(1)} ms`, `${(crossCall / sameCall).toFixed(2)}x`],
      [`host-side call, 64 B, median (${HOST_CALLS})`, `${sameHost.median.toFixed(2)} ms`, `${crossHost.median.toFixed(2)} ms`, `${(crossHost.median / sameHost.median).toFixed(2)}x`],
      ['host-side call, 64 B, p99', `${sameHost.p99.toFixed(2)} ms`, `${crossHost.p99.toFixed(2)} ms`, `${(crossHost.p99 / sameHost.p99).toFixed(2)}x`],
    ];
    console.log('chat across hosts: two cluster hubs through nats-server on loopback (one machine, TCG guests)');
    for (const r of rows) console.log(`${r[0].padEnd(40)} ${r[1].padStart(13)} ${r[2].padStart(14)} ${r[3].padStart(14)}`);
  } finally {
    for (const vm of vms) await vm.close().catch(() => undefined);
    for (const h of hubs) await h.close().catch(() => undefined);
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker!.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
