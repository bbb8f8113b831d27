import { describe, expect, it } from 'vitest';
import { checkAccess, listenerHosts, sameSecret } from './access-check.js';

const policy = { hosts: listenerHosts('127.0.0.1', 9479), token: 'a'.repeat(64) };
const good = { host: '127.0.0.1:9479', authorization: `Bearer ${'a'.repeat(64)}` };

describe('dashboard access', () => {
  it('lets in the listener\'s own hosts with the token', () => {
    expect(checkAccess(good, policy, true)).toEqual({ ok: true });
    expect(checkAccess({ ...good, host: 'localhost:9479', origin: 'http://localhost:9479' }, policy, true)).toEqual({ ok: true });
    expect(checkAccess({ ...good, host: '[::1]:9479' }, policy, true)).toEqual({ ok: true });
  });

  it('refuses another name for the address (DNS rebinding), another port, or no Host', () => {
    expect(checkAccess({ ...good, host: 'evil.example:9479' }, policy, true)).toMatchObject({ ok: false, status: 403, code: 'BAD_HOST' });
    expect(checkAccess({ ...good, host: '127.0.0.1:80' }, policy, true)).toMatchObject({ code: 'BAD_HOST' });
    expect(checkAccess({ ...good, host: '10.0.2.2:9479' }, policy, false)).toMatchObject({ code: 'BAD_HOST' });
    expect(checkAccess({ authorization: good.authorization }, policy, true)).toMatchObject({ code: 'BAD_HOST' });
  });

  it('refuses another site\'s pages by Origin, token or not', () => {
    expect(checkAccess({ ...good, origin: 'http://evil.example' }, policy, true)).toMatchObject({ status: 403, code: 'BAD_ORIGIN' });
    expect(checkAccess({ ...good, origin: 'null' }, policy, false)).toMatchObject({ code: 'BAD_ORIGIN' });
    expect(checkAccess({ ...good, origin: 'https://127.0.0.1:9479' }, policy, true)).toMatchObject({ code: 'BAD_ORIGIN' });
  });

  it('needs the token in the header where asked, and only the right one', () => {
    expect(checkAccess({ host: good.host }, policy, true)).toMatchObject({ status: 401, code: 'NO_TOKEN' });
    expect(checkAccess({ host: good.host, authorization: 'Basic eDp5' }, policy, true)).toMatchObject({ code: 'NO_TOKEN' });
    expect(checkAccess({ host: good.host, authorization: `Bearer ${'b'.repeat(64)}` }, policy, true)).toMatchObject({ code: 'BAD_TOKEN' });
    expect(checkAccess({ host: good.host, authorization: 'Bearer a' }, policy, true)).toMatchObject({ code: 'BAD_TOKEN' });
    expect(checkAccess({ host: good.host }, policy, false)).toEqual({ ok: true });
  });

  it('compares secrets of any length', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abd')).toBe(false);
    expect(sameSecret('abc', 'abcd')).toBe(false);
    expect(sameSecret('', '')).toBe(true);
  });
});
