// The web dashboard in a real browser (Debian's chromium, driven headless by playwright-core) against a
// real daemon with two real guests: both are shown running, a chart gains points as stats records arrive,
// a chat message sent from the page reaches a guest listener, the stop button (after its confirmation)
// stops a VM, and a request without the token is refused; the page rides over a daemon killed with -9 and
// started again (it reconnects its event stream by itself, no reload, and shows the new daemon's events),
// the kill button (after its confirmation) kills a VM and the start button starts it again. Screenshots go to test/artifacts/ (git-ignored).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRepoRoot } from '../../orchestrator/vm/repo-root.js';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

const suffix = (process.pid % 10_000).toString();
const A = `it-db-a-${suffix}`;
const B = `it-db-b-${suffix}`;
const C = `it-db-c-${suffix}`;
const CHROMIUM = process.env.VMGMT_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(findRepoRoot(), 'test', 'artifacts');

/** The process runs (a zombie has died: after a daemon restart its parent is init, which reaps it). */
const isRunning = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/** A loopback port free now: the listener must keep its port across the daemon's restart (the page's origin). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('the web dashboard in chromium', () => {
  let d: DaemonFixture;
  let browser: Browser;
  let page: Page;
  let info: { url: string; token: string };
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium (make build)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    d = await DaemonFixture.start({ config: { metrics: { port: await freePort() }, stats: { intervalMs: 1000 } }, readyTimeoutMs: 60_000 });
    info = (await d.api('GET', '/v1/dashboard')).body;
    for (const name of [A, B]) expect((await d.api('POST', '/v1/vms', { name, accel: 'tcg' })).status).toBe(201);
    const started = await Promise.all([A, B].map((name) => d.api('POST', `/v1/vms/${name}/start`, undefined, 300_000)));
    for (const s of started) expect(s.status, JSON.stringify(s.body)).toBe(200);
    // As root chromium needs --no-sandbox.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('shows both VMs running, with sparklines filling as stats arrive', async () => {
    await page.goto(info.url);
    // The token went from the address bar into the tab's storage.
    expect(page.url()).not.toContain(info.token);
    for (const name of [A, B]) await page.locator(`#vm-list tr[data-vm="${name}"] .state[data-state="running"]`).waitFor({ timeout: 60_000 });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30_000 });
    // Each guest's agent sends a record a second once it has booted: the CPU sparkline gets points.
    for (const name of [A, B]) {
      await waitFor(`sparkline points of ${name}`, async () => {
        const n = Number(await page.locator(`#vm-list tr[data-vm="${name}"] td:nth-child(3) .spark`).getAttribute('data-points'));
        return n >= 3 ? n : undefined;
      });
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-list.png'), fullPage: true });
  });

  it('a VM page\'s chart gains points as statistics arrive', async () => {
    await page.locator(`#vm-list a:text-is("${A}")`).click();
    await page.locator('#vm-state[data-state="running"]').waitFor();
    const points = async (): Promise<number> => Number(await page.locator('#chart-cpu').getAttribute('data-points'));
    const first = await waitFor('the first points', async () => ((await points()) > 0 ? points() : undefined), 60_000);
    const later = await waitFor('more points', async () => {
      const n = await points();
      return n >= first + 3 ? n : undefined;
    }, 60_000);
    expect(later).toBeGreaterThanOrEqual(first + 3);
    // The chart is drawn by uPlot, from the daemon's own copy (no CDN).
    expect(await page.locator('#chart-cpu .uplot canvas').count()).toBeGreaterThan(0);
    await page.locator('#device-counters dt:text-is("doorbells")').waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-vm.png'), fullPage: true });
  });

  it('a chat message sent from the page reaches a guest listener', async () => {
    const r = await d.guest(B, 'vmgmt-guest chat register bob >> /tmp/bob.out 2> /tmp/bob.err & echo started', 170_000);
    expect(r.stdout).toContain('started');
    await waitFor('bob registered', async () => ((await d.api('GET', '/v1/chat/peers')).body.peers.some((p: any) => p.vm === B && p.name === 'bob') ? true : undefined), 120_000);
    await page.goto(`${info.url.replace(/#.*$/, '')}#/vm/${B}`);
    await page.locator('#chat-to option[value="bob"]').waitFor({ state: 'attached', timeout: 30_000 });
    await page.locator('#chat-text').fill('hello from the page');
    await page.locator('#chat-send').click();
    await page.locator('#chat-log li.out:has-text("host -> bob: hello from the page (delivered)")').waitFor({ timeout: 30_000 });
    const got = await waitFor('the message at bob', async () => {
      const out = (await d.guest(B, 'cat /tmp/bob.out')).stdout;
      return out.includes('hello from the page') ? out : undefined;
    }, 60_000);
    expect(got).toContain('@host/host -> bob: hello from the page');
    // bob's channel is in chat mode: the device card's channel table shows it as the API counts it.
    const chatChannel = (await d.api('GET', `/v1/vms/${B}`)).body.device.channels.find((c: any) => c.mode === 'chat');
    expect(chatChannel.messages).toBeGreaterThanOrEqual(1);
    const row = page.locator(`#device-channels tr[data-channel="${chatChannel.channel}"][data-mode="chat"]`);
    await row.waitFor({ timeout: 30_000 });
    expect(Number(await row.locator('td:nth-child(3)').textContent())).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-chat.png'), fullPage: true });
  });

  it('the stop button asks, then stops the VM', async () => {
    await page.locator('#action-stop').click();
    await page.locator('#confirm').waitFor();
    expect(await page.locator('#confirm').textContent()).toContain(`Stop ${B}?`);
    // Cancel does nothing; then stop for real.
    await page.locator('#confirm-no').click();
    expect((await d.api('GET', `/v1/vms/${B}`)).body.state).toBe('running');
    await page.locator('#action-stop').click();
    await page.locator('#confirm-yes').click();
    await page.locator('#vm-state[data-state="stopped"]').waitFor({ timeout: 120_000 });
    expect((await d.api('GET', `/v1/vms/${B}`)).body.state).toBe('stopped');
    expect((await d.api('GET', `/v1/vms/${A}`)).body.state).toBe('running');
    await page.goto(info.url.replace(/#.*$/, '#/'));
    await page.locator(`#vm-list tr[data-vm="${B}"] .state[data-state="stopped"]`).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-stopped.png'), fullPage: true });
  });

  it('refuses a request without the token, even from the dashboard\'s own page', async () => {
    const statuses = await page.evaluate(async () => {
      const plain = await fetch('/v1/vms');
      const events = await fetch('/v1/events');
      const metrics = await fetch('/metrics');
      const wrong = await fetch('/v1/vms', { headers: { Authorization: `Bearer ${'0'.repeat(64)}` } });
      const action = await fetch('/v1/vms/x/kill', { method: 'POST' });
      return [plain.status, events.status, metrics.status, wrong.status, action.status];
    });
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    expect(consoleErrors.filter((e) => !/401|Unauthorized/i.test(e))).toEqual([]);
  });

  it('reconnects its event stream by itself after the daemon is killed (-9) and started again, without a reload', async () => {
    await page.evaluate("location.hash = '#/'");
    await page.locator(`#vm-list tr[data-vm="${A}"] .state[data-state="running"]`).waitFor();
    await page.evaluate("window.sameDocument = 'yes'");
    await page.locator(`#vm-list a:text-is("${A}")`).click();
    await page.locator('#vm-state[data-state="running"]').waitFor();
    const points = async (): Promise<number> => Number(await page.locator('#chart-cpu').getAttribute('data-points'));
    await d.kill9();
    await page.locator('#conn[data-state="down"]').waitFor({ timeout: 30_000 });
    const before = await points();
    await d.startDaemon();
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 60_000 });
    // The new daemon found A still running (it re-attached its device); its stats records reach the chart
    // through the new stream (the chart takes points from the stream only, and the page did not reload).
    // Channels the new core asked to reset (they were in a mode) are no protocol errors of the guest.
    expect((await d.api('GET', `/v1/vms/${A}`)).body).toMatchObject({ state: 'running', device: { origin: 'reattached', protocolErrors: 0 } });
    await waitFor('chart points from the new daemon', async () => ((await points()) >= before + 2 ? true : undefined), 90_000);
    // A VM created now is a lifecycle event of the new daemon: the list shows it.
    expect((await d.api('POST', '/v1/vms', { name: C, accel: 'tcg' })).status).toBe(201);
    await page.evaluate("location.hash = '#/'");
    await page.locator(`#vm-list tr[data-vm="${C}"] .state[data-state="defined"]`).waitFor({ timeout: 30_000 });
    expect(await page.evaluate('window.sameDocument')).toBe('yes');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-reconnected.png'), fullPage: true });
  });

  it('the kill button asks, then kills the VM', async () => {
    await page.locator(`#vm-list a:text-is("${A}")`).click();
    await page.locator('#vm-state[data-state="running"]').waitFor();
    await page.locator('#action-kill').click();
    await page.locator('#confirm').waitFor();
    expect(await page.locator('#confirm').textContent()).toContain(`Kill ${A}?`);
    await page.locator('#confirm-no').click();
    expect(await page.locator('#confirm').count()).toBe(0);
    expect((await d.api('GET', `/v1/vms/${A}`)).body.state).toBe('running');
    const pid = (await d.api('GET', `/v1/vms/${A}`)).body.pid as number;
    await page.locator('#action-kill').click();
    await page.locator('#confirm-yes').click();
    await page.locator('#vm-state[data-state="stopped"], #vm-state[data-state="crashed"]').waitFor({ timeout: 60_000 });
    const after = (await d.api('GET', `/v1/vms/${A}`)).body;
    expect(['stopped', 'crashed']).toContain(after.state);
    expect(await page.locator('#vm-state').getAttribute('data-state')).toBe(after.state);
    expect(await page.locator('#action-error').textContent()).toBe('');
    // Killed: its QEMU is gone, and only start is offered now.
    await waitFor(`QEMU ${pid} gone`, async () => (isRunning(pid) ? undefined : true), 10_000);
    expect(await page.locator('#action-start').isEnabled()).toBe(true);
    expect(await page.locator('#action-kill').isDisabled()).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-killed.png'), fullPage: true });
  });

  it('the start button asks, then starts the killed VM again', async () => {
    await page.locator('#action-start').click();
    await page.locator('#confirm').waitFor();
    expect(await page.locator('#confirm').textContent()).toContain(`Start ${A}?`);
    await page.locator('#confirm-yes').click();
    await page.locator('#vm-state[data-state="running"]').waitFor({ timeout: 300_000 });
    expect((await d.api('GET', `/v1/vms/${A}`)).body.state).toBe('running');
    expect(await page.locator('#action-error').textContent()).toBe('');
    expect(await page.locator('#action-kill').isEnabled()).toBe(true);
  });
});
