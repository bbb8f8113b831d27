import { describe, expect, it } from 'vitest';
import { findLpcPath, parseHmpPortRead, PM1_EN_PWRBTN_EN, powerButtonFrom, readPowerButton, type QmpExecutor } from './acpi-power-button.js';

describe('acpi-power-button', () => {
  it('parses HMP port reads of each width and refuses another port or garbage', () => {
    expect(parseHmpPortRead('portw[0x0602] = 0x0120\r\n', 0x602)).toBe(0x120);
    expect(parseHmpPortRead('portl[0x0602] = 0x00010120\r\n', 0x602)).toBe(0x10120);
    expect(parseHmpPortRead('portw[0x0604] = 0x0001\r\n', 0x602)).toBeUndefined();
    expect(parseHmpPortRead('unknown command: i\r\n', 0x602)).toBeUndefined();
  });

  it('finds the ICH9-LPC child among others', () => {
    expect(findLpcPath([{ name: 'device[0]', type: 'child<intel-iommu>' }, { name: 'device[2]', type: 'child<ICH9-LPC>' }])).toBe('/machine/unattached/device[2]');
    expect(findLpcPath([{ name: 'device[0]', type: 'child<PIIX4_PM>' }])).toBeUndefined();
  });

  it('decides from the PM base and PM1_EN: firmware stage, kernel stage, enabled, unreadable', () => {
    expect(powerButtonFrom(0, undefined)).toMatchObject({ kind: 'disabled', why: expect.stringContaining('firmware') });
    expect(powerButtonFrom(0x600, 0x0020)).toMatchObject({ kind: 'disabled', why: expect.stringContaining('kernel had not enabled') });
    expect(powerButtonFrom(0x600, 0x0020 | PM1_EN_PWRBTN_EN)).toEqual({ kind: 'enabled' });
    expect(powerButtonFrom(0x600, undefined)).toMatchObject({ kind: 'unknown' });
  });

  it('reads PM1_EN at the base QEMU reports, and says unknown when QMP fails', async () => {
    const asked: string[] = [];
    const qmp: QmpExecutor = {
      execute: async <T>(command: string, args?: Record<string, unknown>): Promise<T> => {
        asked.push(`${command} ${JSON.stringify(args)}`);
        if (command === 'qom-list') return [{ name: 'device[5]', type: 'child<ICH9-LPC>' }] as T;
        if (command === 'qom-get') return 0xb000 as T;
        return 'portw[0xb002] = 0x0100\r\n' as T;
      },
    };
    expect(await readPowerButton(qmp)).toEqual({ kind: 'enabled' });
    expect(asked[1]).toBe('qom-get {"path":"/machine/unattached/device[5]","property":"pm_io_base"}');
    expect(asked[2]).toBe('human-monitor-command {"command-line":"i /h 0xb002"}');
    const failing: QmpExecutor = { execute: () => Promise.reject(new Error('QMP socket closed')) };
    expect(await readPowerButton(failing)).toMatchObject({ kind: 'unknown', why: expect.stringContaining('QMP socket closed') });
  });
});
