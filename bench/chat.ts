// bench/chat: chat round trips and message rates between two TCG guests sharing one hub (as every VM of a
// daemon does), with the real driver on both sides, beside the baselines measured in the same run: each
// guest's raw ping round trip through its device, and the way sibling VMs talk today, TCP between the
// same two guests over virtio-net (a QEMU UDP socket netdev joins them: a TCP one adds the host socket's
// Nagle delay to every multi-segment message; the bench loads virtio_net itself).
// `make bench-chat` (or node dist/bench/chat.js). VMGMT_BENCH_CHAT_N sets the round trips per row.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../device-backend/core/core-logger.js';
import { LocalChatHub } from '../device-backend/services/chat/local-chat-hub.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';
import { guestRun, guestSeconds, median } from './bench-guest.js';

const N = Number(process.env.VMGMT_BENCH_CHAT_N ?? 2000);
const MESSAGES = Number(process.env.VMGMT_BENCH_CHAT_MESSAGES ?? 50_000);
const LARGE = 500;
const LARGE_BYTES = 32 * 1024;
const SIZES = [64, 4096] as const;
/** Waiters spin this long before they sleep: the round-trip rows measure the path, not the sleep. */
const SPIN = '--wait poll --spin-us 200000';
/** What a virtio-net-pci device needs in the test image's kernel, loaded with their deps from modules.dep. */
const NET_MODULES = ['kernel/drivers/virtio/virtio_pci.ko', 'kernel/drivers/net/virtio_net.ko'];

interface Rtt {
  median: number;
  p99: number;
}

function parseRtt(out: string, prefix: string): Rtt {
  const m = new RegExp(`${prefix}: .*median_us=([\\d.]+) p99_us=([\\d.]+)`).exec(out);
  if (!m) throw new Error(`no ${prefix} summary in:\n${out}`);
  return { median: Number(m[1]), p99: Number(m[2]) };
}

const payload = (bytes: number): string => `head -c ${bytes} /dev/zero | tr '\\0' x`;

/** The modules to load, deps first, as files in the kernel's module tree (modules.dep order). */
function netModules(): { dir: string; files: string[] } {
  const release = /release=(.*)/.exec(readFileSync('images/build/kernel-version.txt', 'utf8'))?.[1];
  if (!release) throw new Error('images/build/kernel-version.txt names no kernel release: run make image');
  const dir = path.resolve('images/build/kernel-root/lib/modules', release);
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(path.join(dir, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod && rest !== undefined) deps.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const order: string[] = [];
  const visit = (m: string): void => {
    if (order.includes(m)) return;
    const d = deps.get(m);
    if (!d) throw new Error(`${m} is not in ${dir}/modules.dep: is the module built into this kernel?`);
    // modules.dep lists every dependency, nearest first: load them from the far end.
    for (const x of [...d].reverse()) visit(x);
    order.push(m);
  };
  for (const m of NET_MODULES) visit(m);
  return { dir, files: order };
}

/** Loads virtio_net from the VM's host root and gives eth0 an address on the guests' own link. */
async function bringUpNet(vm: DeviceVm, modules: string[], address: string): Promise<void> {
  const gets = modules.map((m) => `vmgmt-guest file get ${path.basename(m)} /tmp/${path.basename(m)} -q && { insmod /tmp/${path.basename(m)} || grep -q '^${path.basename(m, '.ko').replace(/-/g, '_')} ' /proc/modules; }`).join(' && ');
  await guestRun(vm, `${gets} && ip link set eth0 up && ip addr add ${address}/24 dev eth0 && echo up`);
}

async function hostCalls(hub: LocalChatHub, target: string, bytes: number, n: number): Promise<Rtt> {
  const host = hub.registerHost('bench-host-caller', () => undefined);
  try {
    const data = new Uint8Array(bytes).fill(120);
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const r = await host.call(target, data, 10_000);
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
      if (!r.ok) throw new Error(`host call to ${target} refused: ${r.reason}`);
      if (r.data.length !== bytes) throw new Error(`host call to ${target}: ${r.data.length} bytes back, sent ${bytes}`);
    }
    times.sort((a, b) => a - b);
    return { median: median(times), p99: times[Math.ceil(times.length * 0.99) - 1]! };
  } finally {
    host.close();
  }
}

/** Seconds for n small sends from a host-side name, 32 in flight, each acknowledged as delivered. */
async function hostSends(hub: LocalChatHub, target: string, n: number): Promise<number> {
  const host = hub.registerHost('bench-host-sender', () => undefined);
  try {
    const enc = new TextEncoder();
    const t0 = process.hrtime.bigint();
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < n) {
        const i = next++;
        const r = await host.send(target, enc.encode(`h${String(i).padStart(6, '0')}`));
        if (!r.ok) throw new Error(`host send ${i} to ${target} refused: ${r.reason}`);
      }
    };
    await Promise.all(Array.from({ length: 32 }, lane));
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    host.close();
  }
}

async function waitLines(vm: DeviceVm, file: string, n: number): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (Number((await guestRun(vm, `wc -l < ${file}`)).trim()) < n) {
    if (Date.now() > deadline) throw new Error(`${file} did not reach ${n} lines in 10 minutes`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const hub = new LocalChatHub({ log: silentLogger });
  const echoHost = hub.registerHost('host-echo', (m) => m.data);
  const roots = [mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-chat-a-')), mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-chat-b-'))];
  const modules = netModules();
  for (const r of roots) for (const m of modules.files) copyFileSync(path.join(modules.dir, m), path.join(r, path.basename(m)));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  let a: DeviceVm | undefined;
  let b: DeviceVm | undefined;
  try {
    console.log(`booting two TCG guests (1 vCPU, 256 MiB each) on one chat hub, joined by a UDP socket netdev on 127.0.0.1:${port}/${port + 1}...`);
    a = await startDeviceVm({
      name: 'bench-chat-a', accel: 'tcg', chat: { hub, group: 'bench' }, files: { root: roots[0]! },
      extraArgs: ['-netdev', `socket,id=bn0,udp=127.0.0.1:${port + 1},localaddr=127.0.0.1:${port}`, '-device', 'virtio-net-pci,netdev=bn0,mac=52:54:00:be:0c:01'],
    });
    b = await startDeviceVm({
      name: 'bench-chat-b', accel: 'tcg', chat: { hub, group: 'bench' }, files: { root: roots[1]! },
      extraArgs: ['-netdev', `socket,id=bn0,udp=127.0.0.1:${port},localaddr=127.0.0.1:${port + 1}`, '-device', 'virtio-net-pci,netdev=bn0,mac=52:54:00:be:0c:02'],
    });
    await bringUpNet(a, modules.files, '10.77.0.1');
    await bringUpNet(b, modules.files, '10.77.0.2');
    await guestRun(b, `vmgmt-guest chat listen echo --echo -q ${SPIN} > /dev/null 2>&1 & vmgmt-guest chat listen relayed --echo -q > /dev/null 2>/tmp/relayed.err & vmgmt-guest chat register sink > /tmp/sink.out 2>/dev/null & vmgmt-guest chat register qsink -q 2>/tmp/qsink.err & echo $! > /tmp/qsink.pid; vmgmt-guest bench tcp-echo --port 7064 --size 64 > /dev/null 2>&1 & vmgmt-guest bench tcp-echo --port 7096 --size 4096 > /dev/null 2>&1 & echo ok`);
    for (;;) {
      const names = hub.peers({ vm: null, name: 'bench', group: undefined }).map((p) => p.name);
      if (['sink', 'qsink', 'echo', 'relayed'].every((n) => names.includes(n))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const relayWait = /wait=(\w+)/.exec(await guestRun(b, 'cat /tmp/relayed.err'))?.[1] ?? '?';

    const pingA = parseRtt(await guestRun(a, `vmgmt-guest ping -n ${N} ${SPIN}`), 'ping');
    const pingB = parseRtt(await guestRun(b, `vmgmt-guest ping -n ${N} ${SPIN}`), 'ping');
    const rows: { what: string; r: Rtt; note?: string }[] = [];
    rows.push({ what: 'ping round trip, guest a (device only)', r: pingA });
    rows.push({ what: 'ping round trip, guest b (device only)', r: pingB });
    const sumPing = pingA.median + pingB.median;
    const calls = new Map<number, Rtt>();
    const tcp = new Map<number, Rtt>();
    for (const bytes of SIZES) {
      const vmvm = parseRtt(await guestRun(a, `${payload(bytes)} | vmgmt-guest chat call echo - --count ${N} ${SPIN}`), 'call');
      calls.set(bytes, vmvm);
      rows.push({ what: `VM->VM call, ${bytes} B`, r: vmvm, note: `${(vmvm.median / sumPing).toFixed(2)}x the sum of the pings` });
      const tcpRtt = parseRtt(await guestRun(a, `vmgmt-guest bench tcp-rtt 10.77.0.2:${bytes === 64 ? 7064 : 7096} --size ${bytes} -n ${N}`), 'tcp-rtt');
      tcp.set(bytes, tcpRtt);
      rows.push({ what: `TCP over virtio-net, ${bytes} B`, r: tcpRtt, note: `chat call ${(tcpRtt.median / vmvm.median).toFixed(1)}x faster` });
      const toHost = parseRtt(await guestRun(a, `${payload(bytes)} | vmgmt-guest chat call host-echo - --count ${N} ${SPIN}`), 'call');
      rows.push({ what: `VM->host call, ${bytes} B`, r: toHost, note: `${(toHost.median / pingA.median).toFixed(2)}x guest a's ping` });
      const fromHost = await hostCalls(hub, 'echo', bytes, N);
      rows.push({ what: `host->VM call, ${bytes} B`, r: fromHost, note: `${(fromHost.median / pingB.median).toFixed(2)}x guest b's ping` });
    }
    // 20 ms between calls: the listener (30 us spin, then the relay) is asleep when each arrives.
    const relayed = parseRtt(await guestRun(a, `${payload(64)} | vmgmt-guest chat call relayed - --count ${Math.min(N, 200)} --gap-ms 20 ${SPIN}`), 'call');
    rows.push({ what: `VM->VM call, 64 B, listener asleep (wait=${relayWait})`, r: relayed, note: `wake-up costs ${(relayed.median - (calls.get(64)?.median ?? 0)).toFixed(0)} us` });

    // Inputs made first, so the rates count the sends, not the guest's seq and awk.
    await guestRun(a, `seq -w 1 ${MESSAGES} | sed 's/^/m/' > /tmp/small.in && awk 'BEGIN { s = sprintf("%${LARGE_BYTES}s", ""); gsub(/ /, "x", s); for (i = 0; i < ${LARGE}; i++) print s }' > /tmp/large.in && echo ok`);
    const small = await guestSeconds(a, `vmgmt-guest chat send sink - --lines ${SPIN} < /tmp/small.in`);
    await waitLines(b, '/tmp/sink.out', MESSAGES);
    await guestRun(b, ': > /tmp/sink.out');
    const large = await guestSeconds(a, `vmgmt-guest chat send sink - --lines ${SPIN} < /tmp/large.in`);
    await waitLines(b, '/tmp/sink.out', LARGE);
    // The same to a listener that takes them without printing: the transport's own rate.
    const quiet = await guestSeconds(a, `vmgmt-guest chat send qsink - --lines ${SPIN} < /tmp/small.in`);
    const took = /took (\d+) messages/.exec(await guestRun(b, 'kill -TERM $(cat /tmp/qsink.pid); while kill -0 $(cat /tmp/qsink.pid) 2>/dev/null; do sleep 0.1; done; cat /tmp/qsink.err'))?.[1];
    if (Number(took) !== MESSAGES) throw new Error(`the quiet listener took ${took} of ${MESSAGES} messages`);
    let atHost = 0;
    const hostSink = hub.registerHost('host-sink', () => {
      atHost++;
    });
    const toHost = await guestSeconds(a, `vmgmt-guest chat send host-sink - --lines ${SPIN} < /tmp/small.in`);
    hostSink.close();
    if (atHost !== MESSAGES) throw new Error(`host-sink got ${atHost} of ${MESSAGES} messages`);
    await guestRun(b, ': > /tmp/sink.out');
    const fromHost = await hostSends(hub, 'sink', MESSAGES);
    await waitLines(b, '/tmp/sink.out', MESSAGES);
    console.log('');
    console.log(`round trips (${N} each, microseconds; waiters spin up to 200 ms before they sleep unless said)`);
    console.log(`${'what'.padEnd(52)} ${'median'.padStart(9)} ${'p99'.padStart(9)}  ratio`);
    for (const r of rows) console.log(`${r.what.padEnd(52)} ${r.r.median.toFixed(1).padStart(9)} ${r.r.p99.toFixed(1).padStart(9)}  ${r.note ?? ''}`);
    console.log('');
    console.log('one-way messages, guest a -> a listener in guest b (pipelined sends, each acknowledged as delivered)');
    console.log(`${'small (inline in the ring slot)'.padEnd(52)} ${String(MESSAGES).padStart(9)} msgs ${Math.round(MESSAGES / small).toString().padStart(9)} msg/s`);
    console.log(`${'small, to a listener that only counts them (-q)'.padEnd(52)} ${String(MESSAGES).padStart(9)} msgs ${Math.round(MESSAGES / quiet).toString().padStart(9)} msg/s`);
    console.log(`${'small, guest a -> a host-side name'.padEnd(52)} ${String(MESSAGES).padStart(9)} msgs ${Math.round(MESSAGES / toHost).toString().padStart(9)} msg/s`);
    console.log(`${'small, host -> the listener in guest b (32 in flight)'.padEnd(52)} ${String(MESSAGES).padStart(9)} msgs ${Math.round(MESSAGES / fromHost).toString().padStart(9)} msg/s`);
    console.log(`${`${LARGE_BYTES / 1024} KiB (through the data slices)`.padEnd(52)} ${String(LARGE).padStart(9)} msgs ${Math.round(LARGE / large).toString().padStart(9)} msg/s  ${((LARGE * LARGE_BYTES) / large / 1e6).toFixed(1)} MB/s`);
    console.log('');
    const c64 = calls.get(64)!;
    console.log(`targets: VM->VM call <= 2x the sum of the pings: ${(c64.median / sumPing).toFixed(2)}x; >= 10x faster than TCP: ${(tcp.get(64)!.median / c64.median).toFixed(1)}x (64 B), ${(tcp.get(4096)!.median / calls.get(4096)!.median).toFixed(1)}x (4 KiB); >= 50,000 msg/s: ${Math.round(MESSAGES / small)} (printing listener), ${Math.round(MESSAGES / quiet)} (counting listener)`);
  } finally {
    echoHost.close();
    await a?.close();
    await b?.close();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  }
}

// --cluster: same-host and cross-host figures side by side, through a real nats-server (bench/chat-cluster.ts).
(process.argv.includes('--cluster') ? import('./chat-cluster.js').then((m) => m.clusterBench()) : main()).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
