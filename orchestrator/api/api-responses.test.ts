import { describe, expect, it } from 'vitest';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import { errorToResponse, serializeJson } from './api-responses.js';

describe('errorToResponse', () => {
  it('uses the HTTP status of the VmgmtError code and keeps message and details', () => {
    const cases = [
      ['NOT_FOUND', 404],
      ['ALREADY_EXISTS', 409],
      ['INVALID_STATE', 409],
      ['TIMEOUT', 504],
      ['QEMU_FAILED', 502],
      ['INVALID_DEFINITION', 400],
    ] as const;
    for (const [code, status] of cases) {
      const mapped = errorToResponse(new VmgmtError(code, `m ${code}`, { name: 'a' }));
      expect(mapped.unexpected).toBe(false);
      expect(mapped.response).toEqual({ status, kind: 'json', body: { code, message: `m ${code}`, details: { name: 'a' } } });
    }
  });

  it('turns anything else into 500 INTERNAL with the message, flagged for logging', () => {
    const mapped = errorToResponse(new TypeError('x is undefined'));
    expect(mapped.unexpected).toBe(true);
    expect(mapped.response).toMatchObject({ status: 500, body: { code: 'INTERNAL', message: expect.stringContaining('x is undefined'), details: { error: 'TypeError' } } });
    expect(errorToResponse('a string').response).toMatchObject({ status: 500, body: { message: expect.stringContaining('a string') } });
    expect(errorToResponse(new VmgmtError('INTERNAL', 'bug')).unexpected).toBe(true);
  });
});

describe('serializeJson', () => {
  it('replaces details that cannot be serialised instead of failing', () => {
    const text = serializeJson({ code: 'INTERNAL', message: 'm', details: { n: 1n } });
    expect(JSON.parse(text)).toEqual({ code: 'INTERNAL', message: 'm', details: { unserializable: expect.stringMatching(/BigInt/) } });
  });
});
