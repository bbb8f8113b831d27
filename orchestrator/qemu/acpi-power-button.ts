// Would the guest take an ACPI power button press now? QEMU's q35 (ICH9) PM block drops a press while the
// guest has not enabled the power button event: hw/acpi/core.c acpi_pm1_evt_power_down() sets the status
// bit only when PM1_EN.PWRBTN_EN (bit 8, ACPI spec "PM1 Enable Registers") is set, and the bit is clear
// from reset until the guest kernel's ACPI button driver enables it. So `system_powerdown` to a guest still
// in its firmware or early kernel is lost, and waiting for it to act is waiting for nothing.
//
// Read through QMP: the ICH9-LPC device's `pm_io_base` property (0 until the firmware placed the PM block),
// then HMP `i /h` of PM1_EN at base + 2. The parsers and the decision are pure; readPowerButton does I/O.

/** PM1_EN.PWRBTN_EN. */
export const PM1_EN_PWRBTN_EN = 1 << 8;
/** PM1_EN's offset in the PM I/O block (PM1_STS at 0, PM1_EN at 2, PM1_CNT at 4). */
export const PM1_EN_OFFSET = 2;
const LPC_TYPE = 'child<ICH9-LPC>';
const LPC_PARENT = '/machine/unattached';

export type PowerButtonState =
  /** The guest has enabled the button event: a press reaches its kernel. */
  | { kind: 'enabled' }
  /** A press would be dropped; `why` says which stage the guest is at, for the user. */
  | { kind: 'disabled'; why: string }
  /** Could not tell (not a q35 machine, an older QEMU, QMP failed): press it and wait, as before. */
  | { kind: 'unknown'; why: string };

/** What QMP offers that this needs: qemu.qmp. */
export interface QmpExecutor {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>;
}

/** HMP `i /h 0x602` answers `portw[0x0602] = 0x0120` (the width letter follows the format). */
export function parseHmpPortRead(text: string, port: number): number | undefined {
  const m = /port[bwl]\[0x([0-9a-f]+)\]\s*=\s*0x([0-9a-f]+)/i.exec(text);
  if (!m || Number.parseInt(m[1]!, 16) !== port) return undefined;
  return Number.parseInt(m[2]!, 16);
}

/** The path of the ICH9-LPC device among the children qom-list gave, or undefined. */
export function findLpcPath(children: ReadonlyArray<{ name: string; type: string }>): string | undefined {
  const lpc = children.find((c) => c.type === LPC_TYPE);
  return lpc ? `${LPC_PARENT}/${lpc.name}` : undefined;
}

/** The decision from the two values read. */
export function powerButtonFrom(pmIoBase: number, pm1En: number | undefined): PowerButtonState {
  if (pmIoBase === 0) return { kind: 'disabled', why: 'its firmware had not set up ACPI yet' };
  if (pm1En === undefined) return { kind: 'unknown', why: 'QEMU did not answer the read of PM1_EN' };
  if ((pm1En & PM1_EN_PWRBTN_EN) === 0) return { kind: 'disabled', why: 'its kernel had not enabled the ACPI power button yet, so QEMU drops a press' };
  return { kind: 'enabled' };
}

export async function readPowerButton(qmp: QmpExecutor, opts: { timeoutMs?: number } = {}): Promise<PowerButtonState> {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  try {
    const children = await qmp.execute<Array<{ name: string; type: string }>>('qom-list', { path: LPC_PARENT }, { timeoutMs });
    const lpc = findLpcPath(Array.isArray(children) ? children : []);
    if (!lpc) return { kind: 'unknown', why: 'the machine has no ICH9-LPC device (not q35)' };
    const base = await qmp.execute<number>('qom-get', { path: lpc, property: 'pm_io_base' }, { timeoutMs });
    if (!Number.isInteger(base) || base < 0 || base > 0xffff) return { kind: 'unknown', why: `ICH9-LPC pm_io_base is ${String(base)}` };
    if (base === 0) return powerButtonFrom(0, undefined);
    const port = base + PM1_EN_OFFSET;
    const answer = await qmp.execute<string>('human-monitor-command', { 'command-line': `i /h 0x${port.toString(16)}` }, { timeoutMs });
    return powerButtonFrom(base, typeof answer === 'string' ? parseHmpPortRead(answer, port) : undefined);
  } catch (err) {
    return { kind: 'unknown', why: `reading the ACPI registers over QMP failed: ${(err as Error).message}` };
  }
}
