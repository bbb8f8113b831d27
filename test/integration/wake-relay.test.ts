// The resident agent holds vfio, sleeps on the MSI-X interrupt and relays wake-ups to the guest's other
// vmgmt-guest processes (/run/vmgmt-guest/wake-<BDF>.sock): a ping reports wait=relay and gets every
// answer; with the agent gone the next ping polls and still succeeds; a restarted agent serves the relay again.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePingSummary } from '../../orchestrator/demo/ping-summary.js';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';

// The agent's pid and its parent (the respawn loop of the image's /init), from /proc.
const AGENT_PIDS = `for d in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $d/cmdline 2>/dev/null); case "$c" in "/usr/bin/vmgmt-guest agent"*) echo "\${d#/proc/} $(awk '/^PPid:/{print $2}' $d/status)";; esac; done`;

const LONG_PINGS = 200_000;

describe('the agent relays the device interrupt to the other guest processes', () => {
  let vm: DeviceVm;
  const sh = (cmd: string, timeoutMs = 120_000) => vm.control.run(cmd, { timeoutMs });
  const consoleText = (): string => readFileSync(path.join(vm.runDir, 'console.log'), 'utf8');

  async function pingUntilRelay(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await sh('vmgmt-guest ping -n 1');
      if (r.exitCode === 0 && parsePingSummary(r.stdout)?.wait === 'relay') return;
      if (Date.now() > deadline) throw new Error(`no relay within 60 s; last ping:\n${r.stdout}`);
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  beforeAll(async () => {
    vm = await startDeviceVm({ name: 'it-relay', accel: 'tcg' });
    await pingUntilRelay();
  });

  afterAll(async () => {
    await vm?.close();
    if (vm) expect(expectNoLeftovers(vm.runDir)).toEqual([]);
  });

  it('the agent says it waits on MSI-X and serves the relay', async () => {
    // The agent prints this once its session is open, which may be just after the relay already answers.
    const line = /agent: serving host copies on channel \d+ of \S+ \(pid \d+, wait=msix, wake-up relay \/run\/vmgmt-guest\/wake-\S+\.sock\)/;
    for (const deadline = Date.now() + 20_000; !line.test(consoleText()) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
    expect(consoleText()).toMatch(line);
  });

  it('a ping waits on the relay and every answer arrives', async () => {
    const before = vm.device.core.counters.messages;
    const r = await sh('vmgmt-guest ping -n 300');
    expect(r.exitCode, r.stdout).toBe(0);
    const s = parsePingSummary(r.stdout);
    expect(s, r.stdout).toBeDefined();
    expect(s!.n).toBe(300);
    expect(s!.wait).toBe('relay');
    expect(vm.device.core.counters.messages - before).toBe(300);
    expect(vm.device.core.counters.protocolErrors).toBe(0);
    // Demanding the relay works too; demanding vfio says who holds it.
    expect(parsePingSummary((await sh('vmgmt-guest ping -n 5 --wait relay')).stdout)?.wait).toBe('relay');
    const msix = await sh('vmgmt-guest ping -n 1 --wait msix');
    expect(msix.exitCode).toBe(1);
    expect(msix.stdout).toMatch(/--wait msix: MSI-X is not available: \/dev\/vfio\/\d+ is busy/);
  });

  it('with the agent killed the next ping polls and succeeds; a restarted agent serves the relay again', async () => {
    const pids = (await sh(AGENT_PIDS)).stdout.trim().split('\n')[0]!.split(' ').map(Number);
    const [agent, loop] = pids as [number, number];
    expect(agent).toBeGreaterThan(1);
    expect(loop).toBeGreaterThan(1);
    // Hold the respawn loop, SIGKILL the agent (its socket file stays behind, refusing connections). It stays
    // a zombie while its parent is stopped: gone is when its cmdline is empty (its files are closed by then).
    const killed = await sh(`kill -STOP ${loop}; kill -KILL ${agent}; while [ -n "$(cat /proc/${agent}/cmdline 2>/dev/null)" ]; do sleep 0.05; done; ls /run/vmgmt-guest`);
    expect(killed.exitCode, killed.stdout).toBe(0);
    try {
      const r = await sh('vmgmt-guest ping -n 50 -v 2>&1');
      expect(r.exitCode, r.stdout).toBe(0);
      expect(parsePingSummary(r.stdout)?.wait, r.stdout).toBe('poll');
      expect(r.stdout).toMatch(/refused the connection: the agent that served it is gone; waiting by polling/);
      const demanded = await sh('vmgmt-guest ping -n 1 --wait relay');
      expect(demanded.exitCode).toBe(1);
    } finally {
      await sh(`kill -CONT ${loop}`);
    }
    await pingUntilRelay();
    const again = await sh('vmgmt-guest ping -n 100');
    expect(again.exitCode, again.stdout).toBe(0);
    expect(parsePingSummary(again.stdout)?.wait).toBe('relay');
    const newAgent = Number((await sh(AGENT_PIDS)).stdout.trim().split(' ')[0]);
    expect(newAgent).not.toBe(agent);
  });

  it('an agent that started while a command held vfio polls, and takes MSI-X and serves the relay once vfio is free', async () => {
    const [agent, loop] = (await sh(AGENT_PIDS)).stdout.trim().split('\n')[0]!.split(' ').map(Number) as [number, number];
    const held = await sh(
      `kill -STOP ${loop}; kill -TERM ${agent}; while [ -n "$(cat /proc/${agent}/cmdline 2>/dev/null)" ]; do sleep 0.05; done; ` +
        `(vmgmt-guest ping -n 3000000 --wait msix > /tmp/holder.out 2>&1 &); sleep 1; kill -CONT ${loop}; cat /tmp/holder.out`,
    );
    expect(held.exitCode, held.stdout).toBe(0);
    try {
      // init restarts the agent after 1 s; it finds vfio busy and polls, saying so.
      const deadline = Date.now() + 60_000;
      while (!/agent: serving host copies .*wait=poll; MSI-X is not available: .*is busy/.test(consoleText())) {
        if (Date.now() > deadline) throw new Error(`the agent did not start polling:\n${consoleText().split('\n').slice(-10).join('\n')}`);
        await new Promise((res) => setTimeout(res, 300));
      }
      expect(parsePingSummary((await sh('vmgmt-guest ping -n 5')).stdout)?.wait).toBe('poll');
    } finally {
      await sh(`for d in /proc/[0-9]*; do case "$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)" in *"ping -n 3000000"*) kill -INT \${d#/proc/};; esac; done`);
    }
    await pingUntilRelay();
    expect(consoleText()).toMatch(/agent: vfio is free now: waiting on MSI-X \(wait=msix, wake-up relay \/run\/vmgmt-guest\/wake-\S+\.sock\)/);
  });

  it('a long-running waiter loses the relay when the agent stops, polls, and takes the relay again when it is back', async () => {
    const pids = (await sh(AGENT_PIDS)).stdout.trim().split('\n')[0]!.split(' ').map(Number);
    const [agent] = pids as [number, number];
    // Without spinning every ping blocks, so they take seconds; the agent is stopped (SIGTERM, respawned by init after 1 s) meanwhile.
    const r = await sh(`(vmgmt-guest ping -n ${LONG_PINGS} --spin-us 0 -t 10000 -v > /tmp/long.out 2>&1 &); sleep 1; kill -TERM ${agent}; while [ -n "$(cat /proc/${agent}/cmdline 2>/dev/null)" ]; do sleep 0.05; done; while ! grep -q '^ping:' /tmp/long.out; do sleep 0.2; done; cat /tmp/long.out`, 170_000);
    expect(r.exitCode, r.stdout).toBe(0);
    const s = parsePingSummary(r.stdout);
    expect(s?.n, r.stdout).toBe(LONG_PINGS);
    expect(r.stdout).toMatch(/the agent's wake-up relay went away/);
    expect(r.stdout).toMatch(/the agent's wake-up relay is back: waiting on it again/);
    expect(s?.wait).toBe('relay');
  });
});
