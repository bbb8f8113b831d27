// VM networking through the CLI against real VMs: user mode (the guest fetches from a host HTTP server at
// 10.0.2.2; a forwarded host port reaches a guest listener) and bridge mode in a network namespace with a
// bridge and a DHCP server the test makes (and always removes).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stableMac } from '../../orchestrator/vm/vm-network.js';
import { DaemonFixture } from '../support/daemon-fixture.js';

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

const httpGet = (url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what} within ${timeoutMs} ms; last error: ${String(last)}`);
}

/** The guest's IPv4 address on eth0 once its DHCP lease is applied. */
async function guestAddress(d: DaemonFixture, vm: string): Promise<string> {
  return until(`${vm} got no IPv4 address on eth0`, async () => {
    const r = await d.guest(vm, 'ip -4 -o addr show dev eth0');
    return /inet (\d+\.\d+\.\d+\.\d+)\//.exec(r.stdout)?.[1];
  });
}

function createVm(d: DaemonFixture, def: unknown): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = path.join(d.baseDir, `def-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(def));
  return d.cli('vm', 'create', '-f', file);
}

describe('user-mode network', () => {
  let d: DaemonFixture;
  let server: http.Server;
  let hostPort: number;
  let forwardPort: number;
  const token = randomBytes(12).toString('hex');

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`host says ${token} to ${req.url}\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    hostPort = (server.address() as net.AddressInfo).port;
    forwardPort = await freePort();
    d = await DaemonFixture.start();
    const created = await createVm(d, {
      name: 'it-net-user',
      accel: 'tcg',
      memoryMiB: 256,
      network: { mode: 'user', forwards: [{ hostPort: forwardPort, guestPort: 8080 }] },
    });
    expect(created.code, created.stderr).toBe(0);
    const started = await d.cli('vm', 'start', 'it-net-user');
    expect(started.code, started.stderr).toBe(0);
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('vm inspect shows the mode, the stable MAC and the forward', async () => {
    const r = await d.cli('vm', 'inspect', 'it-net-user');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`user, mac ${stableMac('it-net-user')}`);
    expect(r.stdout).toContain(`tcp 127.0.0.1:${forwardPort} -> guest 8080`);
    const j = JSON.parse((await d.cli('--json', 'vm', 'inspect', 'it-net-user')).stdout);
    expect(j.network).toEqual({ mode: 'user', mac: stableMac('it-net-user'), forwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: forwardPort, guestPort: 8080 }] });
  });

  it('the guest gets a DHCP lease with the stable MAC and fetches from a host server at 10.0.2.2', async () => {
    expect(await guestAddress(d, 'it-net-user')).toBe('10.0.2.15');
    const mac = await d.guest('it-net-user', 'cat /sys/class/net/eth0/address');
    expect(mac.stdout.trim()).toBe(stableMac('it-net-user'));
    const r = await d.guest('it-net-user', `wget -O - http://10.0.2.2:${hostPort}/from-guest 2>/dev/null`);
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain(`host says ${token} to /from-guest`);
  });

  it('a forwarded host port reaches a listener in the guest', async () => {
    const setup = await d.guest('it-net-user', `mkdir -p /tmp/www && echo "guest says ${token}" >/tmp/www/t && httpd -p 8080 -h /tmp/www && echo started`);
    expect(setup.stdout).toContain('started');
    const got = await until('the forwarded port did not reach the guest httpd', async () => {
      const r = await httpGet(`http://127.0.0.1:${forwardPort}/t`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(got.trim()).toBe(`guest says ${token}`);
  });
});

describe('the network definition', () => {
  let d: DaemonFixture;
  beforeAll(async () => {
    d = await DaemonFixture.start();
  });
  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('refuses a bad forward and a missing bridge, naming the field', async () => {
    const bad = await createVm(d, { name: 'it-net-bad', network: { mode: 'user', forwards: [{ hostPort: 70000, guestPort: 22 }] } });
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/network\.forwards\.0\.hostPort/);
    const created = await createVm(d, { name: 'it-net-nobr', accel: 'tcg', network: { mode: 'bridge', bridge: 'vmgmtnobr0' } });
    expect(created.code, created.stderr).toBe(0);
    const started = await d.cli('vm', 'start', 'it-net-nobr');
    expect(started.code).not.toBe(0);
    expect(started.stderr).toContain('network bridge vmgmtnobr0 does not exist');
  });

  it('a VM without a network section has no NIC', async () => {
    const r = await createVm(d, { name: 'it-net-none' });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse((await d.cli('--json', 'vm', 'inspect', 'it-net-none')).stdout);
    expect(j.network).toEqual({ mode: 'none', mac: null });
    expect(j.definition.network).toEqual({ mode: 'none' });
  });
});

describe('bridge network in a network namespace', () => {
  const ns = `vmgmt-it-${randomBytes(3).toString('hex')}`;
  const bridge = 'vmgmtbr0';
  const hostIp = '10.213.0.1';
  const children: ChildProcess[] = [];
  let d: DaemonFixture | undefined;
  let dir: string;
  const token = randomBytes(12).toString('hex');
  const inNs = (...args: string[]): string => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 30_000 });

  beforeAll(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    inNs('ip', 'link', 'set', 'lo', 'up');
    inNs('ip', 'link', 'add', bridge, 'type', 'bridge');
    inNs('ip', 'addr', 'add', `${hostIp}/24`, 'dev', bridge);
    inNs('ip', 'link', 'set', bridge, 'up');
    d = await DaemonFixture.start({ netns: ns });
    dir = path.join(d.baseDir, 'netns');
    mkdirSync(path.join(dir, 'www'), { recursive: true });
    writeFileSync(path.join(dir, 'www', 't'), `bridge host says ${token}\n`);
    writeFileSync(
      path.join(dir, 'udhcpd.conf'),
      [`start 10.213.0.10`, `end 10.213.0.20`, `interface ${bridge}`, `lease_file ${dir}/leases`, `option subnet 255.255.255.0`, `option router ${hostIp}`, ''].join('\n'),
    );
    writeFileSync(path.join(dir, 'leases'), '');
    for (const argv of [
      ['busybox', 'udhcpd', '-f', path.join(dir, 'udhcpd.conf')],
      ['busybox', 'httpd', '-f', '-p', `${hostIp}:8081`, '-h', path.join(dir, 'www')],
    ]) {
      children.push(spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' }));
    }
    const created = await createVm(d, { name: 'it-net-br', accel: 'tcg', memoryMiB: 256, network: { mode: 'bridge', bridge } });
    expect(created.code, created.stderr).toBe(0);
    const started = await d.cli('vm', 'start', 'it-net-br');
    expect(started.code, started.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    const left = d ? await d.cleanup() : [];
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      // never created
    }
    expect(left).toEqual([]);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(ns);
  });

  it('the VM tap is on the test bridge, the guest leases an address there and talks to the host both ways', async () => {
    const tap = JSON.parse((await d!.cli('--json', 'vm', 'inspect', 'it-net-br')).stdout).network.ifname as string;
    expect(inNs('ip', '-o', 'link', 'show', 'dev', tap)).toContain(`master ${bridge}`);
    const ip = await guestAddress(d!, 'it-net-br');
    expect(ip).toMatch(/^10\.213\.0\.(1[0-9]|20)$/);
    const fetched = await d!.guest('it-net-br', `wget -O - http://${hostIp}:8081/t 2>/dev/null`);
    expect(fetched.stdout).toContain(`bridge host says ${token}`);
    await d!.guest('it-net-br', `mkdir -p /tmp/www && echo "bridge guest says ${token}" >/tmp/www/g && httpd -p 8080 -h /tmp/www`);
    const back = await until('the host could not reach the guest httpd over the bridge', async () => {
      try {
        return inNs('busybox', 'wget', '-q', '-O', '-', `http://${ip}:8080/g`);
      } catch {
        return undefined;
      }
    });
    expect(back.trim()).toBe(`bridge guest says ${token}`);
  });
});
