// Cluster mode on one machine: two "hosts" as network namespaces made here, joined by a veth pair with
// addresses of their own; nats-server (Debian's) runs in host A's namespace with one nkey user per host
// that may publish only under its own subjects; each host runs its own daemon (own daemonId, so its own
// cgroups, state and runtime directories) and one VM. A VM on A calls a VM on B by name; presence of B's
// names is seen on A, and their leave when B's VM is killed; a name held on A is refused to B; cutting
// the link (veth down) gives CHAT_UNREACHABLE within seconds and B keeps serving its own VM, then it
// recovers; a broker restart loses no message whose sender was told "delivered".
// Everything made here is removed however the run ends: namespaces, veths, daemons, QEMU, nats-server,
// cgroups and temp dirs.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nkeys } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerConfig } from '../../device-backend/services/chat/cluster/broker-config.js';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

/** Debian installs it in /usr/sbin, which a non-login PATH may lack. */
const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
const TAG = `vc${process.pid % 100000}`;
const NS = { a: `${TAG}a`, b: `${TAG}b` } as const;
const VETH = { a: `${TAG}va`, b: `${TAG}vb` } as const;
const SUBNET = `10.213.${process.pid % 250}`;
const ADDR = { a: `${SUBNET}.1`, b: `${SUBNET}.2` } as const;
const PORT = 14222;
const HOST = { a: `ha${TAG}`, b: `hb${TAG}` } as const;
const VM = { a: 'it-cl-a', b: 'it-cl-b' } as const;
const CLUSTER = { bucket: `it-${TAG}`, heartbeatMs: 500, leaseMs: 2500, requestTimeoutMs: 3000 };

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]): void => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
};

function removeLeftovers(): void {
  for (const ns of Object.values(NS)) quiet('ip', ['netns', 'del', ns]);
  for (const v of Object.values(VETH)) quiet('ip', ['link', 'del', v]);
  for (const h of Object.values(HOST)) for (const root of ['', 'cpu/', 'cpuacct/']) removeCgroupTree(`/sys/fs/cgroup/${root}vmgmt-${h}`);
}

function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still has a process (it is killed above), or gone
  }
}

describe('cluster mode: two hosts in network namespaces, one NATS broker', () => {
  let base: string;
  let broker: ChildProcess | undefined;
  let brokerLog = '';
  const d: { a?: DaemonFixture; b?: DaemonFixture } = {};
  let watch: ReturnType<DaemonFixture['cliStreaming']> | undefined;
  let watchOut = '';

  const startBroker = async (): Promise<void> => {
    const child = spawn('ip', ['netns', 'exec', NS.a, NATS_SERVER, '-c', path.join(base, 'nats.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (b: Buffer) => (brokerLog += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (brokerLog += b.toString()));
    broker = child;
    const mark = brokerLog.length;
    await waitFor('nats-server to listen', () => (brokerLog.slice(mark).includes('Server is ready') ? true : child.exitCode !== null ? Promise.reject(new Error(`nats-server exited:\n${brokerLog}`)) : undefined), 30_000);
  };
  const stopBroker = async (): Promise<void> => {
    const child = broker;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };

  beforeAll(async () => {
    removeLeftovers();
    base = mkdtempSync(path.join(tmpdir(), 'vmgmt-it-cluster-'));
    // The hosts: two namespaces, a veth pair with an address in each, loopback up (daemon A reaches the broker on 127.0.0.1).
    for (const ns of Object.values(NS)) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['link', 'add', VETH.a, 'netns', NS.a, 'type', 'veth', 'peer', 'name', VETH.b, 'netns', NS.b]);
    for (const h of ['a', 'b'] as const) {
      sh('ip', ['-n', NS[h], 'addr', 'add', `${ADDR[h]}/24`, 'dev', VETH[h]]);
      sh('ip', ['-n', NS[h], 'link', 'set', VETH[h], 'up']);
    }
    // One nkey user per host; the seed goes to the host's credentials file, the public key to the broker.
    const users = (['a', 'b'] as const).map((h) => {
      const u = nkeys.createUser();
      const file = path.join(base, `${h}.nk`);
      writeFileSync(file, `${new TextDecoder().decode(u.getSeed())}\n`, { mode: 0o600 });
      return { h, host: HOST[h], publicKey: u.getPublicKey(), file };
    });
    writeFileSync(path.join(base, 'nats.conf'), brokerConfig({ listen: `0.0.0.0:${PORT}`, storeDir: path.join(base, 'js'), bucket: CLUSTER.bucket, users }));
    await startBroker();
    const url = { a: `nats://127.0.0.1:${PORT}`, b: `nats://${ADDR.a}:${PORT}` };
    for (const u of users) {
      const fixture = await DaemonFixture.start({
        config: { logLevel: 'info', daemonId: u.host, cluster: { credentialsFile: u.file, ...CLUSTER } },
        // nsenter switches only the network namespace (ip netns exec also remounts /sys, hiding the cgroup tree).
        prefix: ['nsenter', `--net=/run/netns/${NS[u.h]}`],
        args: ['--cluster', url[u.h]],
        readyTimeoutMs: 120_000,
      });
      d[u.h] = fixture;
      await waitFor(`daemon ${u.h} to announce itself in the cluster`, () => (fixture.log.includes('"msg":"cluster: announced"') ? true : undefined), 60_000);
    }
    for (const h of ['a', 'b'] as const) {
      const created = await d[h]!.api('POST', '/v1/vms', { name: VM[h], accel: 'tcg', chatGroup: 'lab' });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
    }
    await Promise.all(
      (['a', 'b'] as const).map(async (h) => {
        const started = await d[h]!.api('POST', `/v1/vms/${VM[h]}/start`, undefined, 300_000);
        expect(started.status, JSON.stringify(started.body)).toBe(200);
      }),
    );
    // Host A's event stream follows presence from the start.
    watch = d.a!.cliStreaming(['chat', 'peers', '--watch'], (all) => (watchOut = all));
  }, 600_000);

  afterAll(async () => {
    const left: string[] = [];
    watch?.child.kill('SIGKILL');
    for (const f of [d.a, d.b]) if (f) left.push(...(await f.cleanup()));
    await stopBroker().catch(() => broker?.kill('SIGKILL'));
    removeLeftovers();
    if (base) rmSync(base, { recursive: true, force: true });
    expect(left).toEqual([]);
    for (const ns of Object.values(NS)) expect(existsSync(`/run/netns/${ns}`)).toBe(false);
  }, 120_000);

  const guest = (h: 'a' | 'b', cmd: string, timeoutMs = 170_000) => d[h]!.guest(VM[h], cmd, timeoutMs);
  const peersOn = async (h: 'a' | 'b'): Promise<string[]> => {
    const r = await d[h]!.cli('chat', 'peers');
    return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : [];
  };
  const bLines = async (): Promise<string[]> => (await guest('b', 'cat /tmp/bob.out')).stdout.split('\n').filter((l) => l !== '');

  it('a VM on host A calls a VM on host B by name, and B sees A\'s identity as A\'s daemon stamped it', async () => {
    expect((await guest('b', 'vmgmt-guest chat listen echo-b --exec "tr a-z A-Z" > /dev/null 2> /tmp/echo.err & vmgmt-guest chat listen slow-b --exec "sleep 5" > /dev/null 2>&1 & vmgmt-guest chat register bob >> /tmp/bob.out 2> /tmp/bob.err & echo ok')).exitCode).toBe(0);
    expect((await guest('a', 'vmgmt-guest chat register alice > /dev/null 2>&1 & echo ok')).exitCode).toBe(0);
    await waitFor('B\'s names on host A', async () => {
      const p = await peersOn('a');
      return p.includes(`${VM.b}@${HOST.b}/echo-b`) && p.includes(`${VM.b}@${HOST.b}/bob`) ? true : undefined;
    });
    const call = await guest('a', 'vmgmt-guest chat call echo-b "hello across hosts"');
    expect(call, call.stdout).toMatchObject({ exitCode: 0, stdout: 'HELLO ACROSS HOSTS' });
    const send = await guest('a', 'vmgmt-guest chat send bob from-a');
    expect(send.exitCode, send.stdout).toBe(0);
    // From the host CLI of A (the host side of A) too.
    expect((await d.a!.cli('chat', 'send', 'bob', 'from-host-a')).code).toBe(0);
    const got = await waitFor('both at bob', async () => {
      const l = await bLines();
      return l.length >= 2 ? l : undefined;
    });
    expect(got).toEqual([`${VM.a}@${HOST.a}/- -> bob: from-a`, `@host/host -> bob: from-host-a`]);
    // A broadcast to the sender's chat group reaches the group's members on the other host too.
    const group = await guest('a', 'vmgmt-guest chat send @ hello-group');
    expect(group.exitCode, group.stdout).toBe(0);
    await waitFor('the broadcast at bob', async () => ((await bLines()).includes(`${VM.a}@${HOST.a}/- -> bob (group): hello-group`) ? true : undefined));
    // Each daemon's VMs are in its own cgroup tree.
    expect(existsSync(`/sys/fs/cgroup/vmgmt-${HOST.b}/${VM.b}`) || existsSync(`/sys/fs/cgroup/cpu/vmgmt-${HOST.b}/${VM.b}`)).toBe(true);
    // A call across hosts that the callee does not answer in time: timed out, as on one host.
    await waitFor('slow-b on host A', async () => ((await peersOn('a')).includes(`${VM.b}@${HOST.b}/slow-b`) ? true : undefined));
    const slow = await guest('a', 'vmgmt-guest chat call slow-b x --call-timeout 1500');
    expect(slow.stdout).toContain('(status 57)');
    // A name that no host holds: no such peer, as on one host.
    const none = await guest('a', 'vmgmt-guest chat send nobody-here x');
    expect(none.stdout).toContain('(status 53)');
    // The policy sees both ends' host: a rule on host A denying host B's names.
    const check = await d.a!.cli('chat', 'policy', 'check', VM.a, 'bob', '--json');
    expect(JSON.parse(check.stdout)).toMatchObject({ allowed: true, to: { vm: VM.b, name: 'bob', group: 'lab' } });
  });

  it('the broker holds each host to its own subjects: B\'s credentials cannot send as another host or read A\'s requests', async () => {
    const script = `
      import { connect, nkeyAuthenticator } from 'nats';
      import { readFileSync } from 'node:fs';
      const out = {};
      const nc = await connect({ servers: 'nats://${ADDR.a}:${PORT}', authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(process.argv[1], 'utf8').trim())), inboxPrefix: '_INBOX_${HOST.b}' });
      const errors = [];
      (async () => { for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.data)); })();
      try { await nc.request('vmgmt.${HOST.a}.to.${HOST.a}', new Uint8Array(4), { timeout: 2000 }); out.forged = 'answered'; } catch (e) { out.forged = e.code; }
      nc.subscribe('vmgmt.*.to.${HOST.a}');
      await nc.flush();
      await new Promise((r) => setTimeout(r, 500));
      out.subscribe = errors.some((e) => /subscription/i.test(e) || /PERMISSIONS/i.test(e)) ? 'denied' : 'allowed: ' + errors.join(',');
      try { await nc.request('vmgmt.${HOST.b}.to.${HOST.a}', new Uint8Array(4), { timeout: 2000 }); out.own = 'answered'; } catch (e) { out.own = e.code; }
      // The names bucket cannot be wiped with a host's credentials; reading it is allowed.
      for (const [what, subject] of [['deleteBucket', '$JS.API.STREAM.DELETE.KV_${CLUSTER.bucket}'], ['purgeBucket', '$JS.API.STREAM.PURGE.KV_${CLUSTER.bucket}']]) {
        try { await nc.request(subject, new Uint8Array(0), { timeout: 2000 }); out[what] = 'answered'; } catch (e) { out[what] = e.code; }
      }
      try { const info = JSON.parse(new TextDecoder().decode((await nc.request('$JS.API.STREAM.INFO.KV_${CLUSTER.bucket}', new Uint8Array(0), { timeout: 2000 })).data)); out.info = info.config ? 'read' : JSON.stringify(info); } catch (e) { out.info = e.code; }
      await nc.close();
      try { const anon = await connect({ servers: 'nats://${ADDR.a}:${PORT}', reconnect: false }); await anon.close(); out.anonymous = 'connected'; } catch (e) { out.anonymous = e.code; }
      console.log(JSON.stringify(out));`;
    const out = execFileSync('ip', ['netns', 'exec', NS.b, process.execPath, '--input-type=module', '-e', script, path.join(base, 'b.nk')], { encoding: 'utf8', cwd: process.cwd() });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    // Publishing under A's subjects is refused by the broker; under its own, A's daemon answers (a malformed request, refused in words).
    expect(r).toEqual({ forged: 'PERMISSIONS_VIOLATION', subscribe: 'denied', own: 'answered', deleteBucket: 'PERMISSIONS_VIOLATION', purgeBucket: 'PERMISSIONS_VIOLATION', info: 'read', anonymous: 'AUTHORIZATION_VIOLATION' });
  });

  it('a name held on one host is refused to another', async () => {
    const dup = await guest('b', 'vmgmt-guest chat register alice');
    expect(dup.exitCode).not.toBe(0);
    expect(dup.stdout).toContain('(status 51)');
    expect(await peersOn('b')).toContain(`${VM.a}@${HOST.a}/alice`);
  });

  it('a cut link gives CHAT_UNREACHABLE within seconds; the cut-off host keeps serving its VM; it recovers', async () => {
    sh('ip', ['-n', NS.b, 'link', 'set', VETH.b, 'down']);
    const cutAt = Date.now();
    try {
      const first = await waitFor('a send to bob to be unreachable', async () => {
        const r = await guest('a', 'vmgmt-guest chat send bob during-cut');
        return r.stdout.includes('(status 64)') ? r : undefined;
      }, 60_000);
      const seconds = (Date.now() - cutAt) / 1000;
      console.log(`unreachable ${seconds.toFixed(1)} s after the cut: ${first.stdout.trim()}`);
      expect(seconds).toBeLessThan(30);
      // Host B still serves its own VM: the host side of B reaches bob without the broker.
      expect(await d.b!.cli('chat', 'send', 'bob', 'local-during-cut')).toMatchObject({ code: 0 });
      await waitFor('the local message at bob', async () => ((await bLines()).includes('@host/host -> bob: local-during-cut') ? true : undefined));
    } finally {
      sh('ip', ['-n', NS.b, 'link', 'set', VETH.b, 'up']);
    }
    await waitFor('sends to bob to work again', async () => ((await guest('a', 'vmgmt-guest chat send bob after-cut')).exitCode === 0 ? true : undefined), 120_000);
    await waitFor('the message after the cut at bob', async () => ((await bLines()).includes(`${VM.a}@${HOST.a}/- -> bob: after-cut`) ? true : undefined));
    const call = await guest('a', 'vmgmt-guest chat call echo-b again');
    expect(call).toMatchObject({ exitCode: 0, stdout: 'AGAIN' });
  });

  it('a broker restart loses no message whose sender was told "delivered"', async () => {
    await guest('b', ': > /tmp/bob.out');
    const loop =
      'i=0; rm -f /tmp/stop; while [ ! -e /tmp/stop ] && [ $i -lt 5000 ]; do if vmgmt-guest chat send bob m-$i >/dev/null 2>&1; then echo ok m-$i; else echo fail m-$i; fi; i=$((i+1)); done > /tmp/sends.out; echo done >> /tmp/sends.out';
    expect((await guest('a', `(${loop}) > /dev/null 2>&1 & echo started`)).exitCode).toBe(0);
    const oks = async (): Promise<number> => (await guest('a', 'grep -c ^ok /tmp/sends.out || true')).stdout.trim().split('\n').map(Number)[0] ?? 0;
    await waitFor('the stream to get going', async () => ((await oks()) >= 10 ? true : undefined));
    await stopBroker();
    const atStop = await oks();
    await startBroker();
    await waitFor('the stream to flow again after the restart', async () => ((await oks()) >= atStop + 10 ? true : undefined), 180_000);
    await guest('a', 'touch /tmp/stop');
    const sends = await waitFor('the stream to end', async () => {
      const out = (await guest('a', 'cat /tmp/sends.out')).stdout;
      return out.includes('done') ? out : undefined;
    });
    const ok = sends.split('\n').filter((l) => l.startsWith('ok ')).map((l) => l.slice(3));
    const failed = sends.split('\n').filter((l) => l.startsWith('fail '));
    const got = await waitFor('the last told-delivered message at bob', async () => {
      const l = await bLines();
      return l.includes(`${VM.a}@${HOST.a}/- -> bob: ${ok[ok.length - 1]}`) ? l : undefined;
    });
    const received = new Set(got);
    const lost = ok.filter((m) => !received.has(`${VM.a}@${HOST.a}/- -> bob: ${m}`));
    console.log(`broker restart: ${ok.length} told delivered, ${failed.length} failed (unreachable while the broker was down); bob got ${got.length}`);
    expect(lost).toEqual([]);
    expect(failed.length, 'some sends met the broker down').toBeGreaterThan(0);
    // FIFO per pair: what arrived is in the order it was sent.
    const seq = got.map((l) => Number(l.split(': m-')[1])).filter((n) => !Number.isNaN(n));
    expect([...seq].sort((x, y) => x - y)).toEqual(seq);
  });

  it('a daemon restart: B\'s names are unreachable while its daemon is gone, and claimed again by the new one', async () => {
    await d.b!.kill9();
    const first = await waitFor('bob to be unreachable with B\'s daemon gone', async () => {
      const r = await guest('a', 'vmgmt-guest chat send bob daemon-gone');
      return r.stdout.includes('(status 64)') ? r : undefined;
    }, 60_000);
    expect(first.exitCode).not.toBe(0);
    await d.b!.startDaemon();
    await waitFor('B to announce again', () => (d.b!.log.split('"msg":"cluster: announced"').length > 2 ? true : undefined), 60_000);
    await waitFor('sends to bob to work again', async () => ((await guest('a', 'vmgmt-guest chat send bob after-restart')).exitCode === 0 ? true : undefined), 60_000).catch((err: unknown) => {
      console.log(`daemon B log (last lines):\n${d.b!.log.split('\n').slice(-80).join('\n')}\ndaemon A log (last lines):\n${d.a!.log.split('\n').slice(-40).join('\n')}`);
      throw err;
    });
    await waitFor('the message at bob', async () => ((await bLines()).includes(`${VM.a}@${HOST.a}/- -> bob: after-restart`) ? true : undefined));
    expect((await guest('a', 'vmgmt-guest chat call echo-b restarted')).stdout).toBe('RESTARTED');
    // The guest listener kept its one registration: the names came back with the daemon's restored state.
    expect((await guest('b', 'cat /tmp/bob.err')).stdout.match(/chat: registered bob/g)).toHaveLength(1);
  });

  it('host A saw B\'s names join, and sees them leave when B\'s VM is killed', async () => {
    expect(watchOut).toContain(`join ${VM.b}@${HOST.b}/bob (registered)`);
    const killed = await d.b!.api('POST', `/v1/vms/${VM.b}/kill`);
    expect(killed.status, JSON.stringify(killed.body)).toBe(200);
    await waitFor('bob to leave on host A', () => (watchOut.includes(`leave ${VM.b}@${HOST.b}/bob (vm stopped or crashed)`) ? true : undefined), 60_000);
    expect(await peersOn('a')).not.toContain(`${VM.b}@${HOST.b}/bob`);
    expect((await guest('a', 'vmgmt-guest chat send bob gone')).stdout).toContain('(status 53)');
  });
});
