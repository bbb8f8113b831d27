// A flood in chat mode, with three real guests on one hub: one VM floods a listener that has stopped
// reading, and is refused QUEUE_FULL once it holds its share of that receiver's queue, while a second VM
// keeps talking to another listener of the same receiver and still gets its own few messages into the
// flooded one. Nothing a sender was told was delivered is lost, and each pair stays in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import { LocalChatHub } from '../../device-backend/services/chat/local-chat-hub.js';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';
import { waitFor } from '../support/wait-for.js';

const FLOODS = 4;
const FLOOD_MESSAGES = 500;
const PAIR_MESSAGES = 2000;

describe('chat under a flood, three real guests', () => {
  let hub: LocalChatHub;
  let flooder: DeviceVm;
  let receiver: DeviceVm;
  let other: DeviceVm;

  beforeAll(async () => {
    hub = new LocalChatHub({ log: silentLogger });
    flooder = await startDeviceVm({ name: 'it-flood-a', accel: 'tcg', chat: { hub, group: 'lab' } });
    receiver = await startDeviceVm({ name: 'it-flood-b', accel: 'tcg', chat: { hub, group: 'lab' } });
    other = await startDeviceVm({ name: 'it-flood-c', accel: 'tcg', chat: { hub, group: 'lab' } });
  });

  afterAll(async () => {
    for (const vm of [flooder, receiver, other]) await vm?.close();
    for (const vm of [flooder, receiver, other]) if (vm) expect(expectNoLeftovers(vm.runDir)).toEqual([]);
  });

  const sh = async (vm: DeviceVm, cmd: string, timeoutMs = 180_000) => {
    const r = await vm.control.run(cmd, { timeoutMs });
    return { code: r.exitCode, out: r.stdout };
  };
  const lines = async (vm: DeviceVm, file: string): Promise<string[]> => (await sh(vm, `cat ${file} 2>/dev/null`)).out.split('\n').filter((l) => l !== '');
  const names = () => hub.peers({ vm: null, name: 'test', group: undefined }).map((p) => p.name);

  it('the flooder is refused at its share; the other pair flows; nothing acknowledged is lost, each pair in order', async () => {
    const started = await sh(receiver, 'vmgmt-guest chat register sink > /tmp/sink.out 2>/tmp/sink.err & echo $! > /tmp/sink.pid; vmgmt-guest chat register quiet > /tmp/quiet.out 2>/dev/null & echo ok');
    expect(started.code, started.out).toBe(0);
    await waitFor('sink and quiet to register', async () => (names().includes('sink') && names().includes('quiet') ? true : undefined));
    // The sink stops reading: its ring fills, then its queue in the core.
    expect((await sh(receiver, 'kill -STOP $(cat /tmp/sink.pid)')).code).toBe(0);

    const floods = Array.from({ length: FLOODS }, (_, k) => `(seq -w 1 ${FLOOD_MESSAGES} | sed 's/^/a${k}-/' | vmgmt-guest chat send sink - --lines > /tmp/flood${k}.out 2>&1; echo "exit $?" >> /tmp/flood${k}.out) &`).join(' ');
    expect((await sh(flooder, `${floods} echo ok`)).code).toBe(0);
    // Each flood keeps 32 sends in flight; past the ring, the queue holds at most the flooder's share of
    // it, so some flood is refused at once, naming the share.
    const refused = await waitFor('a flood to be refused QUEUE_FULL', async () => {
      for (let k = 0; k < FLOODS; k++) {
        const out = (await lines(flooder, `/tmp/flood${k}.out`)).join('\n');
        if (out.includes('exit ')) return { k, out };
      }
      return undefined;
    });
    expect(refused.out).toMatch(/send to sink: .*share.*\(status 55\)/);
    expect(refused.out).toContain('exit 8');

    // Meanwhile the other VM's pair with the same receiver flows in full, in order.
    const pair = await sh(other, `seq -w 1 ${PAIR_MESSAGES} | sed 's/^/c-/' | vmgmt-guest chat send quiet - --lines`);
    expect(pair.code, pair.out).toBe(0);
    const quiet = await waitFor(`${PAIR_MESSAGES} messages at quiet`, async () => {
      const l = await lines(receiver, '/tmp/quiet.out');
      return l.length >= PAIR_MESSAGES ? l : undefined;
    });
    expect(quiet).toEqual(Array.from({ length: PAIR_MESSAGES }, (_, i) => `it-flood-c/- -> quiet: c-${String(i + 1).padStart(4, '0')}`));

    // And its own few messages to the flooded sink are taken: its share is its own.
    expect((await sh(other, `(seq -w 1 10 | sed 's/^/c-/' | vmgmt-guest chat send sink - --lines > /tmp/c-sink.out 2>&1; echo "exit $?" >> /tmp/c-sink.out) & echo ok`)).code).toBe(0);

    // The sink reads again: everything acknowledged arrives, each pair in order.
    expect((await sh(receiver, 'kill -CONT $(cat /tmp/sink.pid)')).code).toBe(0);
    const ends = await waitFor('every flood and the other VM to finish', async () => {
      const outs: string[] = [];
      for (let k = 0; k < FLOODS; k++) outs.push((await lines(flooder, `/tmp/flood${k}.out`)).join('\n'));
      const c = (await lines(other, '/tmp/c-sink.out')).join('\n');
      return [...outs, c].every((o) => o.includes('exit ')) ? { outs, c } : undefined;
    }, 180_000);
    expect(ends.c, (await lines(receiver, '/tmp/sink.err')).join('\n')).toContain('exit 0');
    const sink = await waitFor('the sink to drain', async () => {
      const l = await lines(receiver, '/tmp/sink.out');
      const done = ends.outs.every((o, k) => !o.includes('exit 0') || l.filter((x) => x.includes(` a${k}-`)).length >= FLOOD_MESSAGES);
      return done && l.filter((x) => x.startsWith('it-flood-c/')).length >= 10 ? l : undefined;
    });
    expect(sink.filter((x) => x.startsWith('it-flood-c/'))).toEqual(Array.from({ length: 10 }, (_, i) => `it-flood-c/- -> sink: c-${String(i + 1).padStart(2, '0')}`));
    for (let k = 0; k < FLOODS; k++) {
      const got = sink.filter((x) => x.startsWith(`it-flood-a/- -> sink: a${k}-`)).map((x) => Number(x.split(`a${k}-`)[1]));
      for (let i = 1; i < got.length; i++) expect(got[i]!, `flood ${k} out of order`).toBeGreaterThan(got[i - 1]!);
      if (ends.outs[k]!.includes('exit 0')) expect(got).toEqual(Array.from({ length: FLOOD_MESSAGES }, (_, i) => i + 1));
    }
    expect(sink.every((x) => x.startsWith('it-flood-a/') || x.startsWith('it-flood-c/'))).toBe(true);
  });
});
