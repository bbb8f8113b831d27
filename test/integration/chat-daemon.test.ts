// The chat mode through the real daemon process: two VMs of one chat group, a guest listener registered by
// name, messages from the other VM and from the host CLI, the policy from the daemon's config file (and
// SIGHUP reloading it), refusals logged with both ends; then kill -9 of the daemon in the middle of a
// stream of sends from the guest and from the host CLI, and a new daemon: the name is still registered,
// the listener's channel was not reset, and no message whose sender was told "delivered" is lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

const A = 'it-cd-a';
const B = 'it-cd-b';
const config = (rules: unknown[]) => ({ logLevel: 'info', chat: { rules } });
const DENY_VAULT = { from: { vm: A }, to: { name: 'vault' }, action: 'deny', note: 'a may not reach the vault' };

describe('chat through the real daemon', () => {
  let d: DaemonFixture;

  beforeAll(async () => {
    d = await DaemonFixture.start({ config: config([DENY_VAULT]), readyTimeoutMs: 120_000 });
    for (const name of [A, B]) {
      const created = await d.api('POST', '/v1/vms', { name, accel: 'tcg', chatGroup: 'lab' });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
    }
    for (const name of [A, B]) {
      const started = await d.api('POST', `/v1/vms/${name}/start`, undefined, 300_000);
      expect(started.status, JSON.stringify(started.body)).toBe(200);
    }
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  const sh = (vm: string, cmd: string, timeoutMs = 170_000) => d.guest(vm, cmd, timeoutMs);
  const bobLines = async (): Promise<string[]> => (await sh(B, 'cat /tmp/bob.out')).stdout.split('\n').filter((l) => l !== '');
  const peers = async (): Promise<string[]> => {
    const r = await d.cli('chat', 'peers');
    return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : [];
  };

  it('a guest listener gets messages from the other VM and from the host CLI', async () => {
    const r = await sh(B, 'vmgmt-guest chat register bob vault >> /tmp/bob.out 2> /tmp/bob.err & echo $! > /tmp/bob.pid');
    expect(r.exitCode).toBe(0);
    await waitFor('bob in vmgmt chat peers', async () => ((await peers()).includes(`${B}/bob`) ? true : undefined));
    const fromA = await sh(A, 'vmgmt-guest chat send bob hello-from-a');
    expect(fromA.exitCode, fromA.stdout).toBe(0);
    const fromHost = await d.cli('chat', 'send', 'bob', 'hello-from-host');
    expect(fromHost, fromHost.stderr).toMatchObject({ code: 0, stdout: 'delivered to bob\n' });
    const got = await waitFor('both messages at bob', async () => {
      const l = await bobLines();
      return l.length >= 2 ? l : undefined;
    });
    expect(got).toEqual([`${A}/- -> bob: hello-from-a`, '@host/host -> bob: hello-from-host']);
  });

  it('the policy comes from the config file; refusals are logged with both ends; SIGHUP applies new rules', async () => {
    const refused = await sh(A, 'vmgmt-guest chat send vault hi');
    expect(refused.exitCode).toBe(8);
    expect(refused.stdout).toContain('(status 54)');
    await waitFor('the refusal in the daemon log', async () => (d.log.includes('"msg":"chat refused"') ? true : undefined), 10_000);
    const line = d.log.split('\n').find((l) => l.includes('"msg":"chat refused"'))!;
    expect(JSON.parse(line)).toMatchObject({ from: `${A}/-`, to: `${B}/vault`, code: 'NOT_ALLOWED' });
    const check = await d.cli('chat', 'policy', 'check', A, `${B}/vault`);
    expect(check.code).toBe(8);
    expect(check.stdout).toContain('rule 0 (a may not reach the vault): deny');
    const json = JSON.parse((await d.cli('chat', 'policy', 'check', A, 'bob', '--json')).stdout);
    expect(json).toMatchObject({ allowed: true, to: { vm: B, name: 'bob', group: 'lab' }, decidedBy: { kind: 'default', name: 'same-group' } });

    d.writeConfig(config([]));
    d.hangup();
    await waitFor('the reload', async () => (d.log.includes('"field":"chat.rules"') ? true : undefined), 30_000);
    const after = await d.cli('chat', 'policy', 'check', A, `${B}/vault`);
    expect(after).toMatchObject({ code: 0 });
    expect(after.stdout).toContain('default: same chat group lab');
    const now = await sh(A, 'vmgmt-guest chat send vault now-allowed');
    expect(now.exitCode, now.stdout).toBe(0);
    await waitFor('the vault message', async () => ((await bobLines()).includes(`${A}/- -> vault: now-allowed`) ? true : undefined));
  });

  it('a host listener (vmgmt chat listen --as ops --exec) answers a guest\'s call; peers --watch sees it come and go', async () => {
    const watch = d.cliStreaming(['chat', 'peers', '--watch'], () => {});
    let listenOut = '';
    await waitFor('the watcher to list', async () => ((await peers()).length > 0 ? true : undefined));
    const listen = d.cliStreaming(['chat', 'listen', '--as', 'ops', '--exec', 'tr a-z A-Z'], (all) => (listenOut = all));
    await waitFor('ops in vmgmt chat peers', async () => ((await peers()).includes('@host/ops') ? true : undefined), 30_000);
    const call = await sh(A, 'vmgmt-guest chat call ops "hello ops"');
    expect(call.exitCode, call.stdout).toBe(0);
    expect(call.stdout).toBe('HELLO OPS');
    expect((await sh(A, 'vmgmt-guest chat send ops plain')).exitCode).toBe(0);
    await waitFor('the listener lines', async () => (listenOut.includes(`${A}/- -> ops: plain`) ? true : undefined), 30_000);
    expect(listenOut).toBe(`${A}/- -> ops (call): hello ops\n${A}/- -> ops: plain\n`);
    listen.child.kill('SIGINT');
    expect((await listen.done).code).toBe(0);
    await waitFor('ops to leave', async () => (!(await peers()).includes('@host/ops') ? true : undefined), 30_000);
    watch.child.kill('SIGINT');
    const w = await watch.done;
    expect(w.code).toBe(0);
    expect(w.stdout).toContain('join @host/ops (registered)');
    expect(w.stdout).toContain('leave @host/ops (host name removed)');
    expect(w.stdout.split('\n')).toContain(`${B}/bob`);
  });

  it('kill -9 in the middle of a stream of sends: name kept, channel not reset, nothing acknowledged is lost', async () => {
    await sh(B, ': > /tmp/bob.out');
    // The guest stream: one short-lived send per message, each outcome written down as the sender saw it.
    const N = 150;
    const loop = `i=0; while [ $i -lt ${N} ]; do if vmgmt-guest chat send bob a-$i >/dev/null 2>&1; then echo ok a-$i; else echo fail a-$i; fi; i=$((i+1)); done > /tmp/sends.out; echo done >> /tmp/sends.out`;
    expect((await sh(A, `(${loop}) > /dev/null 2>&1 & echo started`)).exitCode).toBe(0);
    // The host stream: the real CLI, one process per message; exit 0 means it was told "delivered".
    const hostOk: string[] = [];
    const hostFailed: string[] = [];
    let hostStop = false;
    const hostLoop = (async () => {
      for (let i = 0; !hostStop; i++) {
        const r = await d.cli('chat', 'send', 'bob', `h-${i}`);
        (r.code === 0 ? hostOk : hostFailed).push(`h-${i}`);
        if (r.code !== 0) await new Promise((res) => setTimeout(res, 200));
      }
    })();

    await waitFor('the streams to get going', async () => {
      const l = await bobLines();
      return l.filter((x) => x.includes('-> bob: a-')).length >= 15 && hostOk.length >= 5 ? true : undefined;
    });
    await d.kill9();
    const aLines = (l: string[]) => l.filter((x) => x.startsWith(`${A}/- -> bob: a-`)).length;
    const atKill = aLines(await bobLines());
    expect(atKill, 'the guest stream was still going when the daemon died').toBeLessThan(N);
    await new Promise((r) => setTimeout(r, 1500));
    await d.startDaemon();
    const afterRestart = hostOk.length;

    // The name is still registered, and the listener was not reset: one registration, still running.
    expect(await peers()).toContain(`${B}/bob`);
    expect((await sh(B, 'cat /tmp/bob.err')).stdout.match(/chat: registered bob/g)).toHaveLength(1);
    expect((await sh(B, 'kill -0 $(cat /tmp/bob.pid) && echo alive')).stdout).toContain('alive');

    const sendsOut = await waitFor('the guest stream to finish', async () => {
      const out = (await sh(A, 'cat /tmp/sends.out 2>/dev/null')).stdout;
      return out.includes('done') ? out : undefined;
    }, 170_000);
    await waitFor('host sends after the restart', async () => (hostOk.length >= afterRestart + 5 ? true : undefined));
    hostStop = true;
    await hostLoop;
    expect((await d.cli('chat', 'send', 'bob', 'after-restart')).code).toBe(0);
    expect((await sh(A, 'vmgmt-guest chat send bob a-after-restart')).exitCode).toBe(0);

    const got = await waitFor('the last messages at bob', async () => {
      const l = await bobLines();
      return l.includes('@host/host -> bob: after-restart') && l.includes(`${A}/- -> bob: a-after-restart`) ? l : undefined;
    });
    expect(aLines(got), 'guest messages arrived after the restart').toBeGreaterThan(atKill);
    const received = new Set(got);
    const guestOk = sendsOut.split('\n').filter((l) => l.startsWith('ok ')).map((l) => l.slice(3));
    const lostGuest = guestOk.filter((m) => !received.has(`${A}/- -> bob: ${m}`));
    const lostHost = hostOk.filter((m) => !received.has(`@host/host -> bob: ${m}`));
    expect({ lostGuest, lostHost }).toEqual({ lostGuest: [], lostHost: [] });
    // Per sender, what arrived is in the order it was sent (FIFO per receiving channel).
    const order = (prefix: string) => got.filter((l) => l.startsWith(prefix)).map((l) => Number(l.split(': ')[1]!.replace(/^[ah]-/, ''))).filter((n) => !Number.isNaN(n));
    for (const prefix of [`${A}/- -> bob: a-`, '@host/host -> bob: h-']) {
      const seq = order(prefix);
      expect([...seq].sort((x, y) => x - y), prefix).toEqual(seq);
    }
    console.log(`guest: ${guestOk.length}/${N} told delivered (${atKill} had arrived when the daemon died); host: ${hostOk.length} told delivered, ${hostFailed.length} failed; bob got ${got.length} lines`);
    // A listener still listening: it took messages sent after the restart (checked above) without re-registering.
    expect((await sh(B, 'cat /tmp/bob.err')).stdout.match(/chat: registered bob/g)).toHaveLength(1);
  });
});
