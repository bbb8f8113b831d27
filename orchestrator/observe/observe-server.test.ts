import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import { ApiEventHub } from '../api/event-hub.js';
import { FakeVmManager } from '../api/fake-vm-manager.js';
import { vmDefinitionSchema } from '../daemon/vm-definition.js';
import { createDaemonMetrics } from './metrics.js';
import { startObserveServer, type ObserveServer } from './observe-server.js';
import { parsePromText } from './prom-text.js';
import { managerSource } from './vm-figures.js';

const TOKEN = 'c'.repeat(64);

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; type: string; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the metrics and dashboard listener', () => {
  let server: ObserveServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(metricsAuth: 'token' | 'none' = 'token') {
    const manager = new FakeVmManager();
    await manager.create(vmDefinitionSchema.parse({ name: 'web' }));
    const events = new ApiEventHub();
    const source = managerSource(manager, () => null);
    server = await startObserveServer({ host: '127.0.0.1', port: 0, token: TOKEN, tokenFile: '/x/dashboard.token', metricsAuth, metrics: createDaemonMetrics(source, events), events, manager, dispatch: { version: 't' }, log: silentLogger });
    return { manager, port: server.port, auth: { Authorization: `Bearer ${TOKEN}` } };
  }

  it('serves metrics, the API and the dashboard files to the token, and nothing without it', async () => {
    const { port, auth, manager } = await start();
    const metrics = await get(port, '/metrics', auth);
    expect(metrics.status).toBe(200);
    expect(parsePromText(metrics.text)).toMatchObject({ ok: true });
    expect(metrics.text).toContain('vmgmt_vm_state{vm="web",state="defined"} 1');
    expect((await get(port, '/metrics')).status).toBe(401);
    expect((await get(port, '/metrics')).headers['www-authenticate']).toMatch(/^Bearer/);
    expect(JSON.parse((await get(port, '/v1/vms', auth)).text).vms.map((v: { name: string }) => v.name)).toEqual(['web']);
    expect((await get(port, '/v1/vms')).status).toBe(401);
    expect((await get(port, '/v1/vms/web/start', {}, 'POST', '{}')).status).toBe(401);
    expect(manager.calls.filter((c) => c.method === 'start')).toEqual([]);
    expect((await get(port, '/v1/vms/web/start', { ...auth, 'Content-Type': 'application/json' }, 'POST', '{}')).status).toBe(200);
    expect(JSON.parse((await get(port, '/v1/dashboard', auth)).text)).toMatchObject({ url: `http://127.0.0.1:${port}/#token=${TOKEN}`, metricsAuth: 'token' });
    const page = await get(port, '/');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.text).toContain('/assets/app.js');
    expect((await get(port, '/assets/uplot/uPlot.iife.min.js')).status).toBe(200);
    expect((await get(port, '/assets/../package.json')).status).toBe(404);
    expect((await get(port, '/v1/vms/web/files/pull?guestPath=/etc/hostname', auth, 'POST')).status).toBe(404);
  });

  it('refuses another Host or Origin, token or not', async () => {
    const { port, auth } = await start();
    expect((await get(port, '/', { Host: 'evil.example' })).status).toBe(403);
    expect((await get(port, '/metrics', { ...auth, Host: `rebound.example:${port}` })).status).toBe(403);
    expect((await get(port, '/v1/vms', { ...auth, Origin: 'http://evil.example' })).status).toBe(403);
    expect((await get(port, '/v1/vms', { ...auth, Origin: `http://localhost:${port}` })).status).toBe(200);
  });

  it('metrics.auth none opens /metrics only', async () => {
    const { port } = await start('none');
    expect((await get(port, '/metrics')).status).toBe(200);
    expect((await get(port, '/v1/vms')).status).toBe(401);
  });
});
