// bench/idle: what an idle guest costs the host, and what waiting costs a command, in the same run and VM
// (`make bench-idle`). One TCG guest; QEMU's utime+stime from /proc/PID/stat over VMGMT_BENCH_IDLE_S (20) s:
//   - no agent at all (the floor: the guest kernel's own timer work),
//   - the agent polling (`agent --wait poll`, the default before the relay: every 100 ms once idle),
//   - the agent on MSI-X with its wake-up relay (the default now).
// And `vmgmt-guest ping -n 1000` median/p99 with wait=poll and wait=relay, with the default 30 us spin and
// without it (--spin-us 0: every round trip blocks); and a chat listener's wake-up after a quiet spell (a host
// call answered by `--exec cat`), polling vs on the relay. Prints two tables.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { silentLogger } from '../device-backend/core/core-logger.js';
import { LocalChatHub } from '../device-backend/services/chat/local-chat-hub.js';
import { parsePingSummary, type PingSummary } from '../orchestrator/demo/ping-summary.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';

const IDLE_S = Number(process.env.VMGMT_BENCH_IDLE_S ?? 20);
// The polling agent polls every 2 ms for 10 s after its connect, then every 100 ms: settle past that.
const SETTLE_S = Number(process.env.VMGMT_BENCH_SETTLE_S ?? 12);
const PINGS = Number(process.env.VMGMT_BENCH_PINGS ?? 1000);
// A chat listener's wake-up after a quiet spell (past its 10 s warm phase): host call -> `--exec cat` reply.
const CHAT_SAMPLES = Number(process.env.VMGMT_BENCH_CHAT_SAMPLES ?? 3);
const CHAT_QUIET_S = 11;

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
}

/** QEMU's CPU over IDLE_S seconds, in % of one host core. */
async function idleCpu(vm: DeviceVm): Promise<number> {
  await sleep(SETTLE_S * 1000);
  const t0 = performance.now();
  const c0 = cpuTicks(vm.qemu.pid);
  await sleep(IDLE_S * 1000);
  const c1 = cpuTicks(vm.qemu.pid);
  const wall = (performance.now() - t0) / 1000;
  return ((c1 - c0) / CLK_TCK / wall) * 100;
}

async function run(vm: DeviceVm, cmd: string): Promise<string> {
  const r = await vm.control.run(cmd, { timeoutMs: 300_000 });
  if (r.exitCode !== 0) throw new Error(`guest command failed (${r.exitCode}): ${cmd}\n${r.stdout}`);
  return r.stdout;
}

async function ping(vm: DeviceVm, args: string): Promise<PingSummary> {
  const out = await run(vm, `vmgmt-guest ping -n ${PINGS} ${args}`);
  const s = parsePingSummary(out);
  if (!s) throw new Error(`no ping summary in:\n${out}`);
  return s;
}

const AGENT_PIDS = `for d in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $d/cmdline 2>/dev/null); case "$c" in "/usr/bin/vmgmt-guest agent"*) echo "\${d#/proc/} $(awk '/^PPid:/{print $2}' $d/status)";; esac; done`;

async function agentPids(vm: DeviceVm): Promise<[number, number] | undefined> {
  const line = (await run(vm, AGENT_PIDS)).trim().split('\n')[0];
  if (!line) return undefined;
  const [a, p] = line.split(' ').map(Number);
  return [a!, p!];
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

const agentServing = async (vm: DeviceVm) => /"mode":"agent"/.test(await run(vm, 'vmgmt-guest info --json'));

async function stopAgent(vm: DeviceVm, agent: number): Promise<void> {
  await run(vm, `kill -TERM ${agent}; while [ -n "$(cat /proc/${agent}/cmdline 2>/dev/null)" ]; do sleep 0.05; done`);
}

async function main(): Promise<void> {
  console.log('booting a TCG guest ...');
  const hub = new LocalChatHub({ log: silentLogger });
  const vm = await startDeviceVm({ name: 'bench-idle', accel: 'tcg', chat: { hub, group: 'bench' } });
  const host = hub.registerHost('bench', () => undefined);
  const rows: { mode: string; cpu: number; ping?: PingSummary }[] = [];
  try {
    await waitFor('the agent relay', async () => parsePingSummary(await run(vm, 'vmgmt-guest ping -n 1'))?.wait === 'relay');

    console.log(`agent on MSI-X with the relay: idle ${IDLE_S} s ...`);
    const relayCpu = await idleCpu(vm);
    const relayPing = await ping(vm, '');
    const pollPingSameAgent = await ping(vm, '--wait poll');
    // Without the 30 us spin every round trip blocks: the wake-up path itself.
    const relayPing0 = await ping(vm, '--spin-us 0');
    const pollPing0 = await ping(vm, '--wait poll --spin-us 0');
    rows.push({ mode: 'agent --wait msix + relay (default)', cpu: relayCpu, ping: relayPing });

    // Hold init's respawn loop while the agent is swapped.
    const [agent, loop] = (await agentPids(vm))!;
    await run(vm, `kill -STOP ${loop}`);
    try {
      await stopAgent(vm, agent);
      console.log(`no agent: idle ${IDLE_S} s ...`);
      rows.push({ mode: 'no agent (floor)', cpu: await idleCpu(vm) });

      await run(vm, 'setsid /usr/bin/vmgmt-guest agent --wait poll >/dev/ttyS0 2>&1 < /dev/null &');
      await waitFor('the polling agent', () => agentServing(vm));
      console.log(`agent polling: idle ${IDLE_S} s ...`);
      const pollCpu = await idleCpu(vm);
      rows.push({ mode: 'agent --wait poll (old default)', cpu: pollCpu, ping: await ping(vm, '') });
      const [pollAgent] = (await agentPids(vm))!;
      await stopAgent(vm, pollAgent);
    } finally {
      await run(vm, `kill -CONT ${loop}`);
    }
    rows.push({ mode: 'ping --wait poll beside the relay agent', cpu: Number.NaN, ping: pollPingSameAgent });
    rows.push({ mode: 'ping --spin-us 0 (every round trip blocks), relay', cpu: Number.NaN, ping: relayPing0 });
    rows.push({ mode: 'ping --spin-us 0 (every round trip blocks), poll', cpu: Number.NaN, ping: pollPing0 });

    // Chat listener wake-up: a call from the host after CHAT_QUIET_S s of quiet, answered by `--exec cat`
    // (the same process start in both modes; the difference is the wake-up).
    const chatRows: string[] = [];
    for (const mode of ['poll', 'auto'] as const) {
      const name = `echo-${mode}`;
      await run(vm, `(vmgmt-guest chat listen ${name} --wait ${mode} --exec cat > /tmp/${name}.out 2>&1 &); echo ok`);
      await waitFor(`listener ${name}`, async () => hub.peers({ vm: null, name: 'bench', group: undefined }).some((p) => p.name === name));
      const ms: number[] = [];
      for (let i = 0; i < CHAT_SAMPLES; i++) {
        await sleep(CHAT_QUIET_S * 1000);
        const t0 = performance.now();
        const r = await host.call(name, new TextEncoder().encode('x'), 30_000);
        ms.push(performance.now() - t0);
        if (!r.ok) throw new Error(`call to ${name} failed: ${JSON.stringify(r)}`);
      }
      const reg = (await run(vm, `head -1 /tmp/${name}.out`)).trim();
      await run(vm, `for d in /proc/[0-9]*; do case "$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)" in *"chat listen ${name}"*) kill -TERM \${d#/proc/};; esac; done`);
      const wait = /wait=(\w+)/.exec(reg)?.[1] ?? '?';
      chatRows.push(`| chat listener --wait ${mode} | wait=${wait} | ${ms.map((x) => x.toFixed(1)).join(', ')} |`);
    }

    console.log('');
    console.log(`idle host CPU of one TCG guest (QEMU utime+stime over ${IDLE_S} s after ${SETTLE_S} s settling; % of one host core) and ping -n ${PINGS}`);
    console.log('| mode | QEMU CPU % | ping wait | median us | p99 us |');
    console.log('|---|---:|---|---:|---:|');
    for (const r of rows) {
      const cpu = Number.isNaN(r.cpu) ? '' : r.cpu.toFixed(2);
      const p = r.ping ? `${r.ping.wait} | ${r.ping.medianUs.toFixed(1)} | ${r.ping.p99Us.toFixed(1)}` : ' | | ';
      console.log(`| ${r.mode} | ${cpu} | ${p} |`);
    }
    console.log('');
    console.log(`chat listener wake-up: host call -> guest listener --exec cat -> reply, after ${CHAT_QUIET_S} s of quiet (ms per sample)`);
    console.log('| listener | wait | call round trip ms |');
    console.log('|---|---|---|');
    for (const r of chatRows) console.log(r);
  } finally {
    host.close();
    await vm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
