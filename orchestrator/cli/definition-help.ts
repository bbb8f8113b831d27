// `vmgmt help definition`: every field of a VM definition with its type, bounds and default, read from the
// zod schema the daemon validates with (vmDefinitionSchema), so the page cannot drift from what is checked.
// A field's words come from its `.describe()` in the schema, else from FIELD_NOTES below; a field with
// neither is still listed with its type, bounds and default. Pure: schema in, rows or text out.
import type { z } from 'zod';
import { vmDefinitionSchema } from '../api/api-contract.js';

export interface FieldRow {
  /** Dotted path: `device.ringSlots`; a union's alternatives are listed as `boot.kernel`, `boot.disk`. */
  path: string;
  /** `integer`, `string`, `boolean`, `one of tcg|kvm|auto`, `object`. */
  type: string;
  /** `64..1048576, a multiple of 64, a power of two`; '' when none. */
  bounds: string;
  /** The default as JSON, `required`, or `optional` (no default: absent means not used). */
  presence: string;
  note: string;
}

/** Words for fields whose schema carries no `.describe()`. */
const FIELD_NOTES: Readonly<Record<string, string>> = {
  name: 'the VM name: 1-32 of a-z 0-9 _ -, starting with a letter or digit',
  memoryMiB: 'guest memory',
  cpus: 'virtual CPUs',
  boot: 'what to boot; absent: the test image from images/build',
  'boot.kernel': 'kernel image on the host (must exist at create)',
  'boot.initrd': 'initrd on the host (must exist at create)',
  'boot.append': 'kernel command line',
  'boot.disk': 'disk image on the host (must exist at create)',
  'boot.format': 'disk image format',
  accel: 'auto: KVM if the self-probe boots a guest under it (`vmgmt host`), else TCG',
  device: 'the management device (ivshmem-doorbell) geometry',
  'device.regionSizeBytes': 'shared memory region',
  'device.vectors': 'MSI-X vectors (doorbell interrupts)',
  'device.channels': 'channels (one per service and client)',
  'device.ringSlots': 'slots per ring',
  'device.slotSizeBytes': 'bytes per ring slot',
  files: 'file mode: a host directory the guest may read and write; absent: no file mode',
  'files.root': 'the host directory (absolute; must exist at create)',
  'files.readOnly': 'refuse every write',
  'files.quotaBytes': 'total bytes the guest may store under root',
  'files.maxFileBytes': 'largest file the guest may write',
  'files.maxEntries': 'most entries the guest may create',
  'files.maxOpenFiles': 'handles open at once',
  'files.fileMode': 'mode of new files (JSON has no octal: 420 = 0644)',
  'files.dirMode': 'mode of new directories (493 = 0755)',
  'files.allowExecutable': 'let the guest set execute bits',
  'files.allowUnsafeNames': 'allow names with control characters or leading -',
  'files.allowHardLinks': 'allow files with more than one link',
  'files.owner': 'uid and gid of what the guest creates',
  'files.owner.uid': 'owner uid',
  'files.owner.gid': 'owner gid',
  chatGroup: 'chat group name',
  cpuModel: "QEMU's -cpu; absent: host under KVM, the TCG default model under TCG",
  restart: 'what to do when the VM crashes',
  'restart.policy': 'never, or restart on-failure',
  'restart.maxRestarts': 'restarts before the policy gives up',
  'restart.backoffMs': 'delay before the first restart (doubles each time)',
  'restart.resetAfterMs': 'running this long without a crash starts the count again',
  cpu: 'CPU scheduling of the vCPU threads (docs/decisions/scheduling.md)',
  'cpu.weight': 'base weight (100 = an ordinary process)',
  'cpu.capPercent': 'hard cap, percent of one host CPU; absent: no cap',
  'cpu.boostBudgetSec': 'time in total the VM may run above its base weight',
  powerdownTimeoutMs: 'how long `vm stop` waits for the guest to power off before `quit`',
};

type AnySchema = z.ZodType & { _zod: { def: Record<string, unknown> & { type: string } }; description?: string };

export function definitionFieldRows(schema: z.ZodType = vmDefinitionSchema, notes: Readonly<Record<string, string>> = FIELD_NOTES): FieldRow[] {
  const rows: FieldRow[] = [];
  walkObject(schema as AnySchema, '', rows, notes);
  return rows;
}

function walkObject(schema: AnySchema, prefix: string, rows: FieldRow[], notes: Readonly<Record<string, string>>): void {
  const shape = schema._zod.def['shape'] as Record<string, AnySchema>;
  for (const [key, field] of Object.entries(shape)) walkField(field, prefix ? `${prefix}.${key}` : key, rows, notes);
}

function walkField(field: AnySchema, path: string, rows: FieldRow[], notes: Readonly<Record<string, string>>): void {
  let inner = field;
  let presence = 'required';
  let description = field.description;
  // Peel optional/default wrappers (in either order), keeping what they say.
  for (;;) {
    const def = inner._zod.def;
    if (def.type === 'default') {
      presence = `default ${JSON.stringify(typeof def['defaultValue'] === 'function' ? (def['defaultValue'] as () => unknown)() : def['defaultValue'])}`;
    } else if (def.type === 'optional') {
      if (presence === 'required') presence = 'optional';
    } else break;
    inner = def['innerType'] as AnySchema;
    description ??= inner.description;
  }
  const def = inner._zod.def;
  const note = description ?? notes[path] ?? '';
  if (def.type === 'object') {
    // An object's own default is every field's default: say so once, then list the fields.
    rows.push({ path, type: 'object', bounds: '', presence: presence.startsWith('default') ? 'default: each field\'s' : presence, note });
    walkObject(inner, path, rows, notes);
    return;
  }
  if (def.type === 'union') {
    const options = def['options'] as AnySchema[];
    rows.push({ path, type: `object, one of ${options.length} forms`, bounds: '', presence, note });
    // The alternatives' fields under the same prefix; a field in more than one form is listed once.
    const seen = new Set<string>();
    for (const option of options) {
      const sub: FieldRow[] = [];
      if (option._zod.def.type === 'object') walkObject(option, path, sub, notes);
      for (const r of sub) if (!seen.has(r.path)) (seen.add(r.path), rows.push(r));
    }
    return;
  }
  rows.push({ path, ...leafType(inner), presence, note });
}

function leafType(schema: AnySchema): { type: string; bounds: string } {
  const def = schema._zod.def;
  const checks = ((def['checks'] as { _zod: { def: Record<string, unknown> } }[] | undefined) ?? []).map((c) => c._zod.def);
  const bounds: string[] = [];
  let min: number | undefined;
  let max: number | undefined;
  let integer = false;
  for (const c of checks) {
    switch (c['check']) {
      case 'number_format':
        if (c['format'] === 'safeint' || c['format'] === 'int32' || c['format'] === 'uint32') integer = true;
        break;
      case 'greater_than':
        min = c['value'] as number;
        break;
      case 'less_than':
        max = c['value'] as number;
        break;
      case 'multiple_of':
        bounds.push(`a multiple of ${String(c['value'])}`);
        break;
      case 'min_length':
        bounds.push(c['minimum'] === 1 ? 'not empty' : `at least ${String(c['minimum'])} characters`);
        break;
      case 'max_length':
        bounds.push(`at most ${String(c['maximum'])} characters`);
        break;
      case 'string_format':
        if (c['format'] === 'starts_with') bounds.push(`starts with ${String(c['prefix'])}`);
        else if (c['format'] === 'regex') bounds.push(`matches ${String(c['pattern'])}`);
        else bounds.push(String(c['format']));
        break;
      case 'custom': {
        const message = typeof c['error'] === 'function' ? (c['error'] as (i: unknown) => unknown)({}) : undefined;
        if (typeof message === 'string') bounds.push(message.replace(/^must be /, ''));
        break;
      }
    }
  }
  if (min !== undefined || max !== undefined) bounds.unshift(`${min ?? '…'}..${max ?? '…'}`);
  switch (def.type) {
    case 'number':
      return { type: integer ? 'integer' : 'number', bounds: bounds.join(', ') };
    case 'string':
      return { type: 'string', bounds: bounds.join(', ') };
    case 'boolean':
      return { type: 'boolean', bounds: '' };
    case 'enum':
      return { type: Object.values(def['entries'] as Record<string, string>).join(' | '), bounds: '' };
    case 'literal':
      return { type: (def['values'] as unknown[]).map((v) => JSON.stringify(v)).join(' | '), bounds: '' };
    default:
      return { type: def.type, bounds: bounds.join(', ') };
  }
}

/** The page: one block per field, aligned, then an example. */
export function formatDefinitionHelp(rows: readonly FieldRow[] = definitionFieldRows()): string {
  const width = Math.max(...rows.map((r) => r.path.length)) + 2;
  const lines = rows.map((r) => {
    const what = [r.type, r.bounds].filter(Boolean).join(', ');
    const head = `  ${r.path.padEnd(width)}${what}; ${r.presence}`;
    return r.note ? `${head}\n  ${''.padEnd(width)}${r.note}` : head;
  });
  return [
    'VM definition (the JSON file of `vmgmt vm create -f FILE`; the same as POST /v1/vms takes).',
    'Every field but name has a default; unknown fields are refused. Sizes are in bytes, times in ms.',
    '',
    ...lines,
    '',
    'Example:',
    '  {"name": "web", "memoryMiB": 512, "cpus": 2, "files": {"root": "/srv/web-files"}, "restart": {"policy": "on-failure"}}',
    '',
  ].join('\n');
}
