import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checkProcessIdentity, processStartTime } from './process-identity.js';

describe('process identity', () => {
  it('matches a live process by start time and -uuid argument, and tells why not otherwise', async () => {
    const uuid = '123e4567-e89b-12d3-a456-426614174000';
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const withUuid = spawn('sh', ['-c', 'sleep 30', '-uuid', uuid], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const start = processStartTime(withUuid.pid!)!;
      expect(start).toMatch(/^\d+$/);
      expect(checkProcessIdentity(withUuid.pid!, start, uuid)).toEqual({ same: true });
      expect(checkProcessIdentity(withUuid.pid!, String(Number(start) + 1), uuid)).toMatchObject({ same: false, why: expect.stringMatching(/reused/) });
      expect(checkProcessIdentity(child.pid!, processStartTime(child.pid!)!, uuid)).toMatchObject({ same: false, why: expect.stringMatching(/not the QEMU/) });
    } finally {
      child.kill();
      withUuid.kill();
    }
    expect(checkProcessIdentity(2 ** 22 + 1, '1', uuid)).toMatchObject({ same: false, why: expect.stringMatching(/no longer exists/) });
  });
});
