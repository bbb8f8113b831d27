// The chat mode end to end: two real guests under TCG with the real C driver share one chat hub (as all VMs
// of a daemon do). Thousands of messages in order, a large one through the receive area, a call answered
// by the other VM's --exec listener, policy refusals, the host as a peer in both directions, malformed
// requests answered while the daemon keeps serving, and presence when a VM is killed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import type { HostChatPeer } from '../../device-backend/services/chat/chat-hub.js';
import { LocalChatHub } from '../../device-backend/services/chat/local-chat-hub.js';
import type { ChatMessage } from '../../device-backend/services/chat/chat-hub.js';
import { ManagementDevice, type ServiceSnapshotStore } from '../../device-backend/management-device.js';
import { loadNative } from '../../device-backend/native/index.js';
import { deviceServices } from '../../device-backend/services/device-services.js';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';
import { waitFor } from '../support/wait-for.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

describe('chat mode between two real guests', () => {
  let hub: LocalChatHub;
  let ops: HostChatPeer;
  const toOps: ChatMessage[] = [];
  let a: DeviceVm;
  let b: DeviceVm;

  beforeAll(async () => {
    hub = new LocalChatHub({ log: silentLogger, policy: { rules: [{ from: { vm: 'it-chat-a' }, to: { name: 'vault' }, action: 'deny', note: 'a may not reach the vault' }] } });
    ops = hub.registerHost('ops', (m) => {
      toOps.push(m);
      return m.callId ? enc.encode(`ops got ${dec.decode(m.data)}`) : undefined;
    });
    a = await startDeviceVm({ name: 'it-chat-a', accel: 'tcg', chat: { hub, group: 'lab' } });
    b = await startDeviceVm({ name: 'it-chat-b', accel: 'tcg', chat: { hub, group: 'lab' } });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (a) expect(expectNoLeftovers(a.runDir)).toEqual([]);
    if (b) expect(expectNoLeftovers(b.runDir)).toEqual([]);
  });

  const sh = (vm: DeviceVm, cmd: string, timeoutMs = 120_000) => vm.control.run(cmd, { timeoutMs });
  const lines = async (vm: DeviceVm, file: string): Promise<string[]> => (await sh(vm, `cat ${file}`)).stdout.split('\n').filter((l) => l !== '');
  const peerNames = () => hub.peers({ vm: null, name: 'test', group: undefined }).map((p) => `${p.vm ?? '@host'}/${p.name}`);

  it('a guest registers names and stays listening; the other lists it as a peer', async () => {
    const r = await sh(b, 'vmgmt-guest chat register bob >> /tmp/bob.out 2> /tmp/bob.err & vmgmt-guest chat listen calc vault --exec "tr a-z A-Z" > /tmp/calc.out 2>&1 & echo started');
    expect(r.exitCode, r.stdout).toBe(0);
    await waitFor('bob, calc and vault to register', async () => (['it-chat-b/bob', 'it-chat-b/calc', 'it-chat-b/vault'].every((n) => peerNames().includes(n)) ? true : undefined));
    const peers = await sh(a, 'vmgmt-guest chat peers');
    expect(peers.exitCode, peers.stdout).toBe(0);
    expect(peers.stdout.split('\n')).toEqual(expect.arrayContaining(['it-chat-b/bob', 'it-chat-b/calc', '@host/host', '@host/ops']));
    expect(peers.stdout).not.toContain('vault'); // a may not reach it, so it does not see it
    // A listener waits on the agent's wake-up relay, or polls if the agent is not up yet.
    expect((await sh(b, 'cat /tmp/bob.err')).stdout).toMatch(/chat: registered bob on channel \d+ \(pid \d+, wait=(relay|poll)\)/);
    const taken = await sh(a, 'vmgmt-guest chat register bob');
    expect(taken.exitCode).toBe(8);
    expect(taken.stdout).toContain('register bob: chat name already registered on this host (by this or another VM) (status 51)');
  });

  it('10,000 messages arrive in order and intact, with the source as the core knows it', async () => {
    const sent = await sh(a, "seq -w 0 9999 | sed 's/^/msg-/' | vmgmt-guest chat send bob - --lines -v", 170_000);
    expect(sent.exitCode, sent.stdout).toBe(0);
    expect(sent.stdout).toMatch(/sent 10000 messages/);
    const got = await waitFor('10000 lines at bob', async () => {
      const l = await lines(b, '/tmp/bob.out');
      return l.length >= 10_000 ? l : undefined;
    });
    expect(got).toHaveLength(10_000);
    for (let i = 0; i < 10_000; i++) {
      if (got[i] !== `it-chat-a/- -> bob: msg-${String(i).padStart(4, '0')}`) throw new Error(`line ${i} is ${JSON.stringify(got[i])}`);
    }
  });

  it('a 40,000-byte message goes through the data slices intact; above 64 KiB is refused', async () => {
    await sh(b, ': > /tmp/bob.out');
    const r = await sh(a, "head -c 40000 /dev/zero | tr '\\0' x > /tmp/big && vmgmt-guest chat send bob - < /tmp/big");
    expect(r.exitCode, r.stdout).toBe(0);
    const got = await waitFor('the large message', async () => {
      const l = await lines(b, '/tmp/bob.out');
      return l.length >= 1 ? l : undefined;
    });
    expect(got).toEqual([`it-chat-a/- -> bob: ${'x'.repeat(40_000)}`]);
    const tooBig = await sh(a, 'head -c 70000 /dev/zero | vmgmt-guest chat send bob -');
    expect(tooBig.exitCode).toBe(2);
    expect(tooBig.stdout).toContain('TOO_LARGE');
  });

  it('a call is answered by the other VM\'s --exec listener', async () => {
    const r = await sh(a, 'vmgmt-guest chat call calc "hello from a"');
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toBe('HELLO FROM A');
    expect(await lines(b, '/tmp/calc.out')).toContain('it-chat-a/- -> calc (call): hello from a');
  });

  it('policy refuses a disallowed pair, in words, and the hub explains why', async () => {
    const r = await sh(a, 'vmgmt-guest chat send vault hi');
    expect(r.exitCode).toBe(8);
    expect(r.stdout).toContain('send to vault: chat policy does not allow this sender to reach this peer (status 54)');
    expect(hub.explain({ vm: 'it-chat-a', name: '', group: 'lab' }, { vm: 'it-chat-b', name: 'vault', group: 'lab' }).reason).toBe('rule 0 (a may not reach the vault): deny');
    const none = await sh(a, 'vmgmt-guest chat send nobody hi');
    expect(none.exitCode).toBe(8);
    expect(none.stdout).toContain('(status 53)');
  });

  it('the host is a peer: a host-side name sends to a guest listener and receives from a guest', async () => {
    expect(await ops.send('bob', enc.encode('hello from the host'))).toEqual({ ok: true, delivered: 1, refused: 0 });
    await waitFor('the host\'s message at bob', async () => ((await lines(b, '/tmp/bob.out')).includes('@host/ops -> bob: hello from the host') ? true : undefined));
    const r = await sh(a, 'vmgmt-guest chat send ops "hi ops" && vmgmt-guest chat call ops status');
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toBe('ops got status');
    expect(toOps.map((m) => [m.from.vm, dec.decode(m.data)])).toEqual([['it-chat-a', 'hi ops'], ['it-chat-a', 'status']]);
    // A host call answered by the guest's --exec listener.
    const reply = await ops.call('calc', enc.encode('from ops'), 30_000);
    expect(reply).toMatchObject({ ok: true, status: 0 });
    expect(reply.ok && dec.decode(reply.data)).toBe('FROM OPS');
  });

  it('malformed chat requests are answered with errors while the daemon keeps serving', async () => {
    for (const [cmd, want] of [
      ['debug raw --mode chat --type 0x0303 --payload 0000000000000000', /status=2 /],
      ['debug raw --mode chat --type 0x0301 --payload 030000000000000041424344', /status=2 /],
      ['debug raw --mode chat --type 0x0301 --payload 0300000000000000414243', /status=50 /],
      ['debug raw --mode chat --type 0x0301 --payload 0300000001000000616263', /status=3 /],
      ['debug raw --mode chat --type 0x0305 --payload 000000000000000000000000000000000000000000000000', /status=58 /],
      ['debug raw --mode chat --type 0x0381 --payload 00', /status=1 /],
    ] as const) {
      const r = await sh(a, `vmgmt-guest ${cmd}`);
      expect(r.stdout, cmd).toMatch(want);
    }
    const ok = await sh(a, 'vmgmt-guest chat send bob still-serving');
    expect(ok.exitCode, ok.stdout).toBe(0);
    await waitFor('bob still served', async () => ((await lines(b, '/tmp/bob.out')).includes('it-chat-a/- -> bob: still-serving') ? true : undefined));
    expect(a.chat).toBeDefined();
  });

  it('a watcher sees a peer leave when its process dies and when its VM is killed', async () => {
    const w = await sh(a, 'vmgmt-guest chat peers --watch > /tmp/watch.out 2>&1 & echo started');
    expect(w.exitCode).toBe(0);
    await waitFor('the watcher to list its peers', async () => ((await lines(a, '/tmp/watch.out')).includes('it-chat-b/bob') ? true : undefined));
    const kill = await sh(b, 'vmgmt-guest chat register temp > /dev/null 2>&1 & sleep 3; kill -9 $!; echo killed');
    expect(kill.stdout).toContain('killed');
    // The killed process's channel is reset when someone reclaims it; a new command does (the agent reaps too).
    await sh(b, 'vmgmt-guest chat peers > /dev/null; true');
    await waitFor('temp to leave', async () => ((await lines(a, '/tmp/watch.out')).some((l) => /^leave it-chat-b\/temp \(process gone\)$/.test(l)) ? true : undefined));
    await b.qemu.kill();
    b.stopCore(); // what the daemon does when QEMU exits
    const seen = await waitFor('bob to leave', async () => {
      const l = await lines(a, '/tmp/watch.out');
      return l.includes('leave it-chat-b/bob (vm stopped or crashed)') ? l : undefined;
    });
    expect(seen).toContain('join it-chat-b/temp (registered)');
    expect(seen).toContain('leave it-chat-b/calc (vm stopped or crashed)');
    expect(peerNames().some((n) => n.startsWith('it-chat-b/'))).toBe(false);
  });
});

describe('chat mode across a daemon restart', () => {
  const stores = new Map<string, Record<string, unknown>>();
  const store = (name: string): ServiceSnapshotStore => ({ load: () => stores.get(name) ?? {}, save: (snap) => void stores.set(name, snap) });
  let hub: LocalChatHub;
  let a: DeviceVm;
  let b: DeviceVm;
  const reattached: ManagementDevice[] = [];

  beforeAll(async () => {
    hub = new LocalChatHub({ log: silentLogger });
    a = await startDeviceVm({ name: 'it-chat-ra', accel: 'tcg', chat: { hub, group: 'lab' }, snapshots: store('it-chat-ra') });
    b = await startDeviceVm({ name: 'it-chat-rb', accel: 'tcg', chat: { hub, group: 'lab' }, snapshots: store('it-chat-rb') });
  });

  afterAll(async () => {
    for (const d of reattached) d.close();
    await a?.close();
    await b?.close();
    if (a) expect(expectNoLeftovers(a.runDir)).toEqual([]);
    if (b) expect(expectNoLeftovers(b.runDir)).toEqual([]);
  });

  const sh = (vm: DeviceVm, cmd: string, timeoutMs = 120_000) => vm.control.run(cmd, { timeoutMs });
  const lines = async (vm: DeviceVm, file: string): Promise<string[]> => (await sh(vm, `cat ${file}`)).stdout.split('\n').filter((l) => l !== '');

  it('names stay registered, chat channels are not reset, and delivered messages are not lost', async () => {
    const r = await sh(b, 'vmgmt-guest chat register bob >> /tmp/bob.out 2> /tmp/bob.err & echo $! > /tmp/bob.pid');
    expect(r.exitCode).toBe(0);
    await waitFor('bob to register', async () => (hub.peers({ vm: null, name: 'x', group: undefined }).some((p) => p.name === 'bob') ? true : undefined));
    // Bob's listener is stopped: 40 messages land in its ring (guest memory), each sender told "delivered".
    await sh(b, 'kill -STOP $(cat /tmp/bob.pid)');
    const sent = await sh(a, "seq -w 0 39 | sed 's/^/before-/' | vmgmt-guest chat send bob - --lines");
    expect(sent.exitCode, sent.stdout).toBe(0);

    // The daemon dies: what the new one gets is what was saved before (as after kill -9), and a new hub.
    const saved = new Map([...stores].map(([k, v]) => [k, structuredClone(v)]));
    const fds = { a: await a.device.locateInQemu(a.qemu.pid), b: await b.device.locateInQemu(b.qemu.pid) };
    a.stopCore();
    b.stopCore();
    for (const [k, v] of saved) stores.set(k, v);
    const hub2 = new LocalChatHub({ log: silentLogger });
    for (const vm of [a, b]) {
      const services = deviceServices({ native: loadNative(), log: silentLogger, chat: { hub: hub2, group: 'lab' } }).services;
      reattached.push(
        ManagementDevice.reattach({
          native: loadNative(),
          name: vm.name,
          socketPath: `${vm.runDir}/ivshmem.sock`,
          log: silentLogger,
          qemuPid: vm.qemu.pid,
          fds: vm === a ? fds.a : fds.b,
          services,
          snapshots: store(vm.name),
        }),
      );
    }
    expect(hub2.peers({ vm: null, name: 'x', group: undefined }).map((p) => `${p.vm ?? '@host'}/${p.name}`)).toContain('it-chat-rb/bob');

    await sh(b, 'kill -CONT $(cat /tmp/bob.pid)');
    const after = await sh(a, 'vmgmt-guest chat send bob after-restart');
    expect(after.exitCode, after.stdout).toBe(0);
    const got = await waitFor('41 messages at bob', async () => {
      const l = await lines(b, '/tmp/bob.out');
      return l.length >= 41 ? l : undefined;
    });
    expect(got).toEqual([...Array.from({ length: 40 }, (_, i) => `it-chat-ra/- -> bob: before-${String(i).padStart(2, '0')}`), 'it-chat-ra/- -> bob: after-restart']);
    // The same listener served on, its channel never reset: one registration line, still running.
    expect((await sh(b, 'cat /tmp/bob.err')).stdout.match(/chat: registered bob/g)).toHaveLength(1);
    expect((await sh(b, 'kill -0 $(cat /tmp/bob.pid) && echo alive')).stdout).toContain('alive');
  });
});
