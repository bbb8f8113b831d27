import { describe, expect, it } from 'vitest';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import { resolveDaemonConfig, daemonConfigFileSchema, type DaemonConfig } from './daemon-config.js';
import { configuredNative } from './vm-manager.js';

describe('configuredNative', () => {
  it('maps regions with the prefault setting of the config as it is at each mapping', () => {
    const calls: unknown[][] = [];
    // Frozen like the addon, whose properties are read-only.
    const fake = Object.freeze({ mapShared: (...args: unknown[]) => (calls.push(args), new ArrayBuffer(8)), close: () => 'closed' }) as unknown as VmgmtNative;
    const live: { current: DaemonConfig } = { current: resolveDaemonConfig(daemonConfigFileSchema.parse({})) };
    const native = configuredNative(fake, live);
    native.mapShared(3, 4096);
    live.current = { ...live.current, devices: { prefaultRegions: true } };
    native.mapShared(4, 8192);
    native.mapShared(5, 8192, false);
    expect(calls).toEqual([
      [3, 4096, false],
      [4, 8192, true],
      [5, 8192, false],
    ]);
    expect(native.close(1)).toBe('closed');
  });
});
