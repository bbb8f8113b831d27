// POST /v1/vms/:name/agent/update through the dispatcher: the manager is asked with what the body said, the
// answer is checked against the contract, and a VM that is not running is a conflict in words.
import { describe, expect, it } from 'vitest';
import { vmDefinitionSchema } from './api-contract.js';
import { dispatchApiRequest } from './api-dispatch.js';
import { FakeVmManager } from './fake-vm-manager.js';

describe('agent update route', () => {
  it('passes binary and deadlines to the manager and answers its result', async () => {
    const m = new FakeVmManager();
    await m.create(vmDefinitionSchema.parse({ name: 'a' }));
    await m.start('a');
    const body = JSON.stringify({ binary: '/opt/vmgmt-guest', reportInMs: 5000 });
    const r = await dispatchApiRequest(m, { method: 'POST', url: '/v1/vms/a/agent/update', bodyText: body }, { version: 't' });
    expect(r.response.status).toBe(200);
    expect(r.response).toMatchObject({ kind: 'json', body: { name: 'a', fromVersion: null, toVersion: 'fake-1' } });
    expect(m.calls.at(-1)).toEqual({ method: 'agentUpdate', args: ['a', { binary: '/opt/vmgmt-guest', reportInMs: 5000 }] });
  });

  it('answers 409 INVALID_STATE for a VM that is not running', async () => {
    const m = new FakeVmManager();
    await m.create(vmDefinitionSchema.parse({ name: 'a' }));
    const r = await dispatchApiRequest(m, { method: 'POST', url: '/v1/vms/a/agent/update', bodyText: '' }, { version: 't' });
    expect(r.response).toMatchObject({ status: 409, body: { code: 'INVALID_STATE', message: expect.stringContaining('needs a running VM') } });
  });
});
