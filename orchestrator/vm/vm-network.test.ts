import { describe, expect, it } from 'vitest';
import { vmDefinitionSchema } from '../daemon/vm-definition.js';
import { buildQemuArgs } from '../qemu/qemu-args.js';
import { bridgeTapName, networkInfo, qemuNetwork, qemuNetworkArgs, stableMac } from './vm-network.js';

describe('vm network', () => {
  it('derives a stable, locally administered unicast MAC from the name', () => {
    expect(stableMac('web')).toBe(stableMac('web'));
    expect(stableMac('web')).not.toBe(stableMac('db'));
    expect(stableMac('web')).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
  });

  it('builds user-mode args with forwards and the MAC', () => {
    const def = vmDefinitionSchema.parse({ name: 'web', network: { mode: 'user', forwards: [{ hostPort: 8080, guestPort: 80 }, { protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 5353, guestPort: 53 }] } });
    const nic = qemuNetwork('web', def.network)!;
    expect(qemuNetworkArgs(nic)).toEqual([
      '-netdev',
      'user,id=vmgmtnet,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:5353-:53',
      '-device',
      `virtio-net-pci,netdev=vmgmtnet,mac=${stableMac('web')}`,
    ]);
  });

  it('bridge mode is a tap QEMU creates under a name of at most 15 bytes; tap mode uses the one named', () => {
    const br = qemuNetwork('a-very-long-vm-name-of-32-chars_', { mode: 'bridge', bridge: 'br0' })!;
    expect(br).toMatchObject({ kind: 'tap', ifname: bridgeTapName('a-very-long-vm-name-of-32-chars_') });
    expect(bridgeTapName('x').length).toBeLessThanOrEqual(15);
    expect(qemuNetworkArgs(qemuNetwork('x', { mode: 'tap', ifname: 'tap7', mac: '02:00:00:00:00:07' })!)).toEqual([
      '-netdev',
      'tap,id=vmgmtnet,ifname=tap7,script=no,downscript=no',
      '-device',
      'virtio-net-pci,netdev=vmgmtnet,mac=02:00:00:00:00:07',
    ]);
  });

  it('mode none has no NIC and is the default', () => {
    const def = vmDefinitionSchema.parse({ name: 'n' });
    expect(def.network).toEqual({ mode: 'none' });
    expect(qemuNetwork('n', def.network)).toBeUndefined();
    expect(networkInfo('n', def.network)).toEqual({ mode: 'none', mac: null });
    const args = buildQemuArgs({ name: 'n', uuid: '123e4567-e89b-12d3-a456-426614174000', accel: 'tcg', memoryMiB: 64, cpus: 1, kernelPath: '/k', qmpSocketPath: '/q', consoleLogPath: '/c' });
    expect(args).not.toContain('-netdev');
  });

  it('refuses bad fields, naming them', () => {
    const bad = (network: unknown) => vmDefinitionSchema.safeParse({ name: 'b', network });
    expect(bad({ mode: 'user', forwards: [{ hostPort: 0, guestPort: 1 }] }).error?.issues[0]?.path).toEqual(['network', 'forwards', 0, 'hostPort']);
    expect(bad({ mode: 'user', forwards: [{ hostPort: 1, guestPort: 1 }, { hostPort: 1, guestPort: 2 }] }).error?.issues[0]?.message).toMatch(/forwarded twice/);
    expect(bad({ mode: 'bridge', bridge: 'this-name-is-too-long' }).success).toBe(false);
    expect(bad({ mode: 'tap', ifname: 't0', mac: '01:00:00:00:00:01' }).error?.issues[0]?.message).toMatch(/unicast/);
    expect(bad({ mode: 'wifi' }).success).toBe(false);
    expect(bad({ mode: 'user', hostfwd: 'x' }).success).toBe(false);
  });
});
