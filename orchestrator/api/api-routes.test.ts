import { describe, expect, it } from 'vitest';
import { matchRoute } from './api-routes.js';

describe('matchRoute', () => {
  it('matches each route and captures the name', () => {
    const cases: [string, string, string, string | undefined][] = [
      ['GET', '/v1/health', 'health', undefined],
      ['GET', '/v1/vms', 'list', undefined],
      ['POST', '/v1/vms', 'create', undefined],
      ['GET', '/v1/vms/a', 'inspect', 'a'],
      ['DELETE', '/v1/vms/a', 'remove', 'a'],
      ['POST', '/v1/vms/web-1/start', 'start', 'web-1'],
      ['POST', '/v1/vms/a/stop', 'stop', 'a'],
      ['POST', '/v1/vms/a/kill', 'kill', 'a'],
      ['GET', '/v1/vms/a/logs', 'logs', 'a'],
      ['POST', '/v1/vms/a/files/push', 'push', 'a'],
      ['POST', '/v1/vms/a/files/pull', 'pull', 'a'],
      ['GET', '/v1/chat/peers', 'chatPeers', undefined],
      ['POST', '/v1/chat/send', 'chatSend', undefined],
      ['POST', '/v1/chat/call', 'chatCall', undefined],
      ['POST', '/v1/chat/reply', 'chatReply', undefined],
      ['GET', '/v1/chat/policy/check', 'chatPolicyCheck', undefined],
      ['GET', '/v1/events', 'events', undefined],
    ];
    for (const [method, path, id, name] of cases) {
      const m = matchRoute(method, path);
      expect(m.kind, `${method} ${path}`).toBe('match');
      if (m.kind !== 'match') continue;
      expect(m.route.id).toBe(id);
      expect(m.params.name).toBe(name);
    }
  });

  it('captures the transfer id and marks the streaming routes', () => {
    const m = matchRoute('GET', '/v1/transfers/00ff');
    expect(m).toMatchObject({ kind: 'match', route: { id: 'download', streaming: true }, params: { id: '00ff' } });
    expect(matchRoute('POST', '/v1/vms/a/files/push')).toMatchObject({ route: { streaming: true } });
    expect(matchRoute('GET', '/v1/events')).toMatchObject({ route: { id: 'events', streaming: true } });
    expect(matchRoute('POST', '/v1/vms/a/start')).toMatchObject({ route: { id: 'start' } });
    expect(matchRoute('POST', '/v1/vms/a/start').kind === 'match' && (matchRoute('POST', '/v1/vms/a/start') as { route: { streaming?: true } }).route.streaming).toBe(undefined);
    expect(matchRoute('GET', '/v1/vms/a/files/push')).toMatchObject({ kind: 'method-not-allowed', allowed: ['POST'] });
  });

  it('ignores one trailing slash and decodes %-escapes in the name', () => {
    expect(matchRoute('GET', '/v1/vms/').kind).toBe('match');
    const m = matchRoute('GET', '/v1/vms/a%2Db');
    expect(m.kind === 'match' && m.params.name).toBe('a-b');
  });

  it('answers not-found for unknown paths and empty names', () => {
    expect(matchRoute('GET', '/v2/vms')).toEqual({ kind: 'not-found', path: '/v2/vms' });
    expect(matchRoute('GET', '/v1/vms/a/b/c').kind).toBe('not-found');
    expect(matchRoute('GET', '/v1/vms//start').kind).toBe('not-found');
    expect(matchRoute('GET', '/').kind).toBe('not-found');
  });

  it('answers method-not-allowed with every method the path takes', () => {
    expect(matchRoute('PATCH', '/v1/vms/a')).toEqual({ kind: 'method-not-allowed', path: '/v1/vms/a', method: 'PATCH', allowed: ['GET', 'DELETE', 'PUT'] });
    expect(matchRoute('GET', '/v1/vms/a/start')).toMatchObject({ kind: 'method-not-allowed', allowed: ['POST'] });
    expect(matchRoute('DELETE', '/v1/vms')).toMatchObject({ kind: 'method-not-allowed', allowed: ['GET', 'POST'] });
  });

  it('reports malformed paths', () => {
    expect(matchRoute('GET', '/v1/vms/%E0%A4%A')).toMatchObject({ kind: 'bad-path' });
    expect(matchRoute('GET', 'v1/vms')).toMatchObject({ kind: 'bad-path' });
  });
});
