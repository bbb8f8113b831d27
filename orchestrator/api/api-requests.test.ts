import { describe, expect, it } from 'vitest';
import { parseApiRequest, parseStreamingRequest, type ParsedApiRequest, type ParsedStreamingRequest } from './api-requests.js';

const req = (method: string, url: string, bodyText = ''): ParsedApiRequest => parseApiRequest({ method, url, bodyText });

function failure(parsed: ParsedApiRequest): { status: number; body: { code: string; message: string; details: Record<string, unknown> } } {
  if (parsed.ok) throw new Error(`expected a failure, got ${JSON.stringify(parsed.action)}`);
  if (parsed.response.kind !== 'json') throw new Error('expected a JSON error');
  return { status: parsed.response.status, body: parsed.response.body as never };
}

describe('parseApiRequest', () => {
  it('creates from a minimal definition, filling defaults', () => {
    const parsed = req('POST', '/v1/vms', '{"name":"a"}');
    expect(parsed.ok).toBe(true);
    if (!parsed.ok || parsed.action.kind !== 'create') return;
    expect(parsed.action.definition).toMatchObject({ name: 'a', memoryMiB: 256, cpus: 1, accel: 'auto', restart: { policy: 'never' } });
  });

  it('refuses an invalid definition naming every field and why', () => {
    const f = failure(req('POST', '/v1/vms', JSON.stringify({ name: 'Bad Name', memoryMiB: 1, colour: 'red', device: { ringSlots: 3 } })));
    expect(f.status).toBe(400);
    expect(f.body.code).toBe('INVALID_DEFINITION');
    const problems = f.body.details.problems as { path: string; message: string }[];
    const paths = problems.map((p) => p.path).sort();
    expect(paths).toEqual(['(top level)', 'device.ringSlots', 'memoryMiB', 'name']);
    expect(problems.find((p) => p.path === '(top level)')?.message).toMatch(/colour/);
    expect(problems.find((p) => p.path === 'device.ringSlots')?.message).toBe('must be a power of two');
    for (const p of ['name:', 'memoryMiB:', 'device.ringSlots:', 'colour']) expect(f.body.message).toContain(p);
  });

  it('refuses at create a device geometry the device would refuse at start, naming the field', () => {
    const f = failure(req('POST', '/v1/vms', JSON.stringify({ name: 'a', device: { regionSizeBytes: 64 * 1024, channels: 64 } })));
    expect(f.status).toBe(400);
    expect(f.body.code).toBe('INVALID_DEFINITION');
    expect(f.body.details.problems).toEqual([{ path: 'device.regionSizeBytes', message: expect.stringMatching(/no data window/) }]);
  });

  it('refuses malformed and empty JSON bodies', () => {
    const bad = failure(req('POST', '/v1/vms', '{"name":'));
    expect(bad).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
    expect(bad.body.message).toMatch(/not valid JSON/);
    expect(failure(req('POST', '/v1/vms', '')).body.message).toMatch(/empty/);
    expect(failure(req('POST', '/v1/vms', '[1]')).body.code).toBe('INVALID_DEFINITION');
  });

  it('start and kill take no body or {}', () => {
    expect(req('POST', '/v1/vms/a/start')).toEqual({ ok: true, action: { kind: 'start', name: 'a' } });
    expect(req('POST', '/v1/vms/a/start', '{}')).toEqual({ ok: true, action: { kind: 'start', name: 'a' } });
    expect(req('POST', '/v1/vms/a/kill', ' \n')).toEqual({ ok: true, action: { kind: 'kill', name: 'a' } });
    const f = failure(req('POST', '/v1/vms/a/start', '{"now":true}'));
    expect(f.body.code).toBe('INVALID_REQUEST');
    expect(f.body.details.problems).toEqual([{ path: 'body', message: expect.stringMatching(/now/) }]);
  });

  it('stop takes an optional timeoutMs and nothing else', () => {
    expect(req('POST', '/v1/vms/a/stop')).toEqual({ ok: true, action: { kind: 'stop', name: 'a' } });
    expect(req('POST', '/v1/vms/a/stop', '{"timeoutMs":5000}')).toEqual({ ok: true, action: { kind: 'stop', name: 'a', timeoutMs: 5000 } });
    expect(failure(req('POST', '/v1/vms/a/stop', '{"timeoutMs":-1}')).body.details.problems).toEqual([
      { path: 'body.timeoutMs', message: expect.any(String) },
    ]);
    expect(failure(req('POST', '/v1/vms/a/stop', '{"timeoutMs":"5"}')).status).toBe(400);
    expect(failure(req('POST', '/v1/vms/a/stop', '{"timeout":5}')).body.message).toMatch(/timeout/);
  });

  it('remove reads force from the query', () => {
    expect(req('DELETE', '/v1/vms/a')).toEqual({ ok: true, action: { kind: 'remove', name: 'a', force: false } });
    expect(req('DELETE', '/v1/vms/a?force=true')).toEqual({ ok: true, action: { kind: 'remove', name: 'a', force: true } });
    expect(req('DELETE', '/v1/vms/a?force=false')).toEqual({ ok: true, action: { kind: 'remove', name: 'a', force: false } });
    expect(failure(req('DELETE', '/v1/vms/a?force=yes')).body.details.problems).toEqual([{ path: 'query.force', message: expect.any(String) }]);
  });

  it('logs reads source and tailBytes from the query', () => {
    expect(req('GET', '/v1/vms/a/logs')).toEqual({ ok: true, action: { kind: 'logs', name: 'a', source: 'console' } });
    expect(req('GET', '/v1/vms/a/logs?source=qemu&tailBytes=100')).toEqual({
      ok: true,
      action: { kind: 'logs', name: 'a', source: 'qemu', tailBytes: 100 },
    });
    expect(failure(req('GET', '/v1/vms/a/logs?source=serial')).body.details.problems).toEqual([{ path: 'query.source', message: expect.any(String) }]);
    expect(failure(req('GET', '/v1/vms/a/logs?tailBytes=0')).status).toBe(400);
    expect(failure(req('GET', '/v1/vms/a/logs?tailBytes=1e3')).body.details.problems).toEqual([
      { path: 'query.tailBytes', message: 'must be a positive whole number of bytes' },
    ]);
    expect(failure(req('GET', '/v1/vms/a/logs?source=qemu&source=console')).body.message).toMatch(/more than once/);
  });

  it('refuses unknown query parameters and bodies where none belong', () => {
    expect(failure(req('GET', '/v1/vms?all=1')).body.details.problems).toEqual([{ path: 'query', message: expect.stringMatching(/all/) }]);
    expect(failure(req('GET', '/v1/vms/a', '{}')).body.details.problems).toEqual([{ path: 'body', message: 'this route takes no request body' }]);
  });

  it('checks the name in the path', () => {
    const f = failure(req('GET', '/v1/vms/Not_OK'));
    expect(f).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST', details: { name: 'Not_OK' } } });
    expect(f.body.message).toMatch(/invalid VM name "Not_OK": use 1-32 characters/);
  });

  it('maps unknown routes to 404 and wrong methods to 405 with Allow', () => {
    expect(failure(req('GET', '/v1/nothing'))).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    const parsed = req('PATCH', '/v1/vms/a');
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.response).toMatchObject({ status: 405, headers: { Allow: 'GET, DELETE, PUT' }, body: { code: 'INVALID_REQUEST' } });
  });
});

describe('parseStreamingRequest', () => {
  const head = (method: string, url: string, contentLength?: string, transferEncoding?: string) =>
    parseStreamingRequest({ method, url, contentLength, transferEncoding });
  const errorOf = (parsed: ParsedStreamingRequest) => {
    if (parsed.kind !== 'error' || parsed.response.kind !== 'json') throw new Error(`expected an error, got ${JSON.stringify(parsed)}`);
    return { status: parsed.response.status, body: parsed.response.body as { code: string; message: string; details: Record<string, unknown> } };
  };

  it('leaves every other request to the buffered parser', () => {
    expect(head('GET', '/v1/vms')).toEqual({ kind: 'buffered' });
    expect(head('POST', '/v1/vms/a/start')).toEqual({ kind: 'buffered' });
    expect(head('GET', '/v1/vms/a/files/push')).toEqual({ kind: 'buffered' });
    expect(head('GET', '/nope')).toEqual({ kind: 'buffered' });
  });

  it('parses push with its size, pull and download', () => {
    expect(head('POST', '/v1/vms/a/files/push?guestPath=%2Ftmp%2Fa%20b', '42')).toEqual({
      kind: 'stream',
      action: { kind: 'push', name: 'a', guestPath: '/tmp/a b', sizeBytes: 42 },
    });
    expect(head('POST', '/v1/vms/a/files/pull?guestPath=/etc/hostname', '0')).toEqual({
      kind: 'stream',
      action: { kind: 'pull', name: 'a', guestPath: '/etc/hostname' },
    });
    expect(head('POST', '/v1/vms/a/files/pull?guestPath=/x')).toMatchObject({ kind: 'stream' });
    const id = 'ab'.repeat(16);
    expect(head('GET', `/v1/transfers/${id}`)).toEqual({ kind: 'stream', action: { kind: 'download', id } });
  });

  it('validates guestPath: present, absolute, no NUL, at most 4096 bytes, nothing else in the query', () => {
    const problem = (url: string) => (errorOf(head('POST', url, '1')).body.details.problems as { path: string; message: string }[])[0];
    expect(problem('/v1/vms/a/files/push')).toMatchObject({ path: 'query.guestPath' });
    expect(problem('/v1/vms/a/files/push?guestPath=')).toMatchObject({ path: 'query.guestPath', message: expect.stringMatching(/empty/) });
    expect(problem('/v1/vms/a/files/push?guestPath=tmp/x')).toMatchObject({ message: 'must be an absolute path (start with /)' });
    expect(problem('/v1/vms/a/files/push?guestPath=/a%00b')).toMatchObject({ message: 'must not contain a NUL byte' });
    // 2049 two-byte characters: 4099 bytes, though only 2050 UTF-16 units.
    expect(problem(`/v1/vms/a/files/push?guestPath=/${encodeURIComponent('é'.repeat(2049))}`)).toMatchObject({ message: 'must be at most 4096 bytes' });
    expect(head('POST', `/v1/vms/a/files/push?guestPath=/${'x'.repeat(4095)}`, '1')).toMatchObject({ kind: 'stream' });
    expect(problem('/v1/vms/a/files/push?guestPath=/x&mode=644')).toMatchObject({ path: 'query', message: expect.stringMatching(/mode/) });
    expect(errorOf(head('POST', '/v1/vms/a/files/push?guestPath=/x&guestPath=/y', '1')).body.message).toMatch(/more than once/);
  });

  it('wants Content-Length on push (411 for chunked or missing), no body on pull', () => {
    expect(errorOf(head('POST', '/v1/vms/a/files/push?guestPath=/x', undefined, 'chunked'))).toMatchObject({ status: 411, body: { code: 'INVALID_REQUEST' } });
    expect(errorOf(head('POST', '/v1/vms/a/files/push?guestPath=/x'))).toMatchObject({ status: 411 });
    expect(errorOf(head('POST', '/v1/vms/a/files/push?guestPath=/x', '1e3')).body.details).toMatchObject({
      problems: [{ path: 'header.Content-Length' }],
    });
    expect(errorOf(head('POST', '/v1/vms/a/files/pull?guestPath=/x', '3')).body.details).toMatchObject({ problems: [{ path: 'body' }] });
  });

  it('refuses bad VM names and download ids', () => {
    expect(errorOf(head('POST', '/v1/vms/Bad!/files/pull?guestPath=/x'))).toMatchObject({ status: 400 });
    expect(errorOf(head('GET', '/v1/transfers/ABC'))).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(errorOf(head('GET', `/v1/transfers/${'a'.repeat(32)}?x=1`))).toMatchObject({ status: 400 });
  });

  it('is never answered by the buffered parser', () => {
    expect(failure(req('POST', '/v1/vms/a/files/push?guestPath=/x', 'data'))).toMatchObject({ status: 500, body: { code: 'INTERNAL' } });
  });
});

describe('parseApiRequest: agent update', () => {
  it('takes no body, or binary, sha256 and deadlines', () => {
    expect(req('POST', '/v1/vms/a/agent/update')).toEqual({ ok: true, action: { kind: 'agentUpdate', name: 'a' } });
    const sha256 = 'cd'.repeat(32);
    expect(req('POST', '/v1/vms/a/agent/update', JSON.stringify({ binary: '/opt/vg', sha256, reportInMs: 5000, probationMs: 0 }))).toEqual({
      ok: true,
      action: { kind: 'agentUpdate', name: 'a', binary: '/opt/vg', sha256, reportInMs: 5000, probationMs: 0 },
    });
  });
  it('refuses a relative binary, a bad digest and unknown fields, naming each', () => {
    const f = failure(req('POST', '/v1/vms/a/agent/update', JSON.stringify({ binary: 'vg', sha256: 'AB', force: true })));
    expect(f.status).toBe(400);
    expect(f.body.message).toMatch(/binary/);
    expect(f.body.message).toMatch(/sha256/);
    expect(f.body.message).toMatch(/force/);
  });
});

describe('pause, resume and exec routes', () => {
  it('pause and resume take no body and name the VM', () => {
    expect(req('POST', '/v1/vms/web/pause')).toMatchObject({ ok: true, action: { kind: 'pause', name: 'web' } });
    expect(req('POST', '/v1/vms/web/resume', '{}')).toMatchObject({ ok: true, action: { kind: 'resume', name: 'web' } });
    expect(failure(req('POST', '/v1/vms/web/pause', '{"now":true}')).status).toBe(400);
  });

  it('exec is a streaming route (its body is the request line and stdin, chunked)', () => {
    expect(parseStreamingRequest({ method: 'POST', url: '/v1/vms/web/exec', transferEncoding: 'chunked' })).toEqual({ kind: 'stream', action: { kind: 'exec', name: 'web' } });
    expect(parseStreamingRequest({ method: 'POST', url: '/v1/vms/web/exec?x=1' }).kind).toBe('error');
    expect(parseStreamingRequest({ method: 'POST', url: '/v1/vms/Bad%20Name/exec' }).kind).toBe('error');
  });

  it('parses an exec resize: a UUID id, rows and cols within a u16; anything else refused with the field named', () => {
    const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const parsed = req('POST', `/v1/vms/web/exec/${id}/resize`, '{"rows":40,"cols":120}');
    expect(parsed).toMatchObject({ ok: true, action: { kind: 'execResize', name: 'web', id, rows: 40, cols: 120 } });
    expect(failure(req('POST', '/v1/vms/web/exec/not-an-id/resize', '{"rows":40,"cols":120}')).status).toBe(404);
    const zero = failure(req('POST', `/v1/vms/web/exec/${id}/resize`, '{"rows":0,"cols":120}'));
    expect(zero.status).toBe(400);
    expect(zero.body.message).toContain('body.rows');
    expect(failure(req('POST', `/v1/vms/web/exec/${id}/resize`, '{"rows":40,"cols":70000}')).body.message).toContain('body.cols');
    expect(failure(req('POST', `/v1/vms/web/exec/${id}/resize`, '{"rows":40,"cols":80,"x":1}')).status).toBe(400);
    expect(failure(req('GET', `/v1/vms/web/exec/${id}/resize`)).status).toBe(405);
  });
});
