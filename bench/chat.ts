// bench/chat: chat throughput and call round trips between two TCG guests sharing one hub, with the real
// driver on both sides. `make bench-chat` (or node dist/bench/chat.js).
import { silentLogger } from '../device-backend/core/core-logger.js';
import { LocalChatHub } from '../device-backend/services/chat/local-chat-hub.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';

const SMALL = Number(process.env.VMGMT_BENCH_CHAT_SMALL ?? 20_000);
const LARGE = Number(process.env.VMGMT_BENCH_CHAT_LARGE ?? 500);
const LARGE_BYTES = 32 * 1024;
const CALLS = Number(process.env.VMGMT_BENCH_CHAT_CALLS ?? 100);

async function run(vm: DeviceVm, cmd: string): Promise<string> {
  const r = await vm.control.run(cmd, { timeoutMs: 600_000 });
  if (r.exitCode !== 0) throw new Error(`guest command failed (${r.exitCode}): ${cmd}\n${r.stdout}`);
  return r.stdout;
}

/** Guest-side seconds from /proc/uptime around cmd (10 ms resolution). */
async function timed(vm: DeviceVm, cmd: string): Promise<number> {
  const out = await run(vm, `s=$(cut -d' ' -f1 /proc/uptime); ${cmd}; e=$(cut -d' ' -f1 /proc/uptime); echo "elapsed $s $e"`);
  const m = /elapsed ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`no elapsed time in:\n${out}`);
  return Math.max(Number(m[2]) - Number(m[1]), 0.01);
}

async function waitLines(vm: DeviceVm, file: string, n: number): Promise<void> {
  for (;;) {
    const got = Number((await run(vm, `wc -l < ${file}`)).trim());
    if (got >= n) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const hub = new LocalChatHub({ log: silentLogger });
  let a: DeviceVm | undefined;
  let b: DeviceVm | undefined;
  try {
    console.log('booting two TCG guests (1 vCPU each) on one chat hub...');
    a = await startDeviceVm({ name: 'bench-chat-a', accel: 'tcg', chat: { hub, group: 'bench' } });
    b = await startDeviceVm({ name: 'bench-chat-b', accel: 'tcg', chat: { hub, group: 'bench' } });
    await run(b, 'vmgmt-guest chat register sink > /tmp/sink.out 2>/dev/null & vmgmt-guest chat listen echo --exec cat > /dev/null 2>&1 & echo ok');
    for (;;) {
      const names = hub.peers({ vm: null, name: 'bench', group: undefined }).map((p) => p.name);
      if (names.includes('sink') && names.includes('echo')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const small = await timed(a, `seq -w 1 ${SMALL} | sed 's/^/m/' | vmgmt-guest chat send sink - --lines`);
    await waitLines(b, '/tmp/sink.out', SMALL);
    await run(b, ': > /tmp/sink.out');
    const large = await timed(a, `awk 'BEGIN { s = sprintf("%${LARGE_BYTES}s", ""); gsub(/ /, "x", s); for (i = 0; i < ${LARGE}; i++) print s }' | vmgmt-guest chat send sink - --lines`);
    await waitLines(b, '/tmp/sink.out', LARGE);
    const calls = await timed(a, `i=0; while [ $i -lt ${CALLS} ]; do vmgmt-guest chat call echo ping > /dev/null || exit 1; i=$((i+1)); done`);
    const rows = [
      ['small messages (inline)', `${SMALL}`, `${Math.round(SMALL / small)} msg/s`],
      [`${LARGE_BYTES / 1024} KiB messages (data slices)`, `${LARGE}`, `${Math.round(LARGE / large)} msg/s, ${((LARGE * LARGE_BYTES) / large / 1e6).toFixed(1)} MB/s`],
      ['calls (a process each: claim, call, reset)', `${CALLS}`, `${((calls / CALLS) * 1000).toFixed(1)} ms per call`],
    ];
    for (const r of rows) console.log(`${r[0]!.padEnd(44)} ${r[1]!.padStart(7)}  ${r[2]}`);
  } finally {
    await a?.close();
    await b?.close();
  }
}

// --cluster: same-host and cross-host figures side by side, through a real nats-server (bench/chat-cluster.ts).
(process.argv.includes('--cluster') ? import('./chat-cluster.js').then((m) => m.clusterBench()) : main()).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
