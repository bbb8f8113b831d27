// What a user writes to define a VM, validated with zod. Unknown fields are rejected; every field but the
// name has a default, so `{"name": "a"}` boots the test image.
import { z } from 'zod';
import { computeGeometry, DEFAULT_GEOMETRY, type GeometryOptions } from '../../device-backend/layout/geometry.js';
import { LIMITS } from '../../device-backend/layout/wire-layout.js';
import { DEFAULT_FILE_LIMITS } from '../../device-backend/services/file/file-root-config.js';
import { type FieldProblem, zodProblems } from '../api/field-problems.js';
import { IFNAME_PATTERN, MAC_PATTERN } from '../vm/vm-network.js';

export const VM_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const powerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

export const kernelBootSchema = z
  .object({
    kernel: z.string().min(1).describe('path to the kernel image'),
    initrd: z.string().min(1).optional(),
    append: z.string().max(4096).optional(),
  })
  .strict();

export const diskBootSchema = z
  .object({
    disk: z.string().min(1).describe('path to a disk image'),
    format: z.enum(['raw', 'qcow2']).default('qcow2'),
  })
  .strict();

/** The definition's name for each option of the device geometry. */
const DEVICE_FIELDS = {
  regionSizeBytes: 'regionSizeBytes',
  vectors: 'vectors',
  channelCount: 'channels',
  ringSlots: 'ringSlots',
  slotSizeBytes: 'slotSizeBytes',
} as const satisfies Record<keyof GeometryOptions, string>;

/**
 * The management device's geometry. Defaults and bounds are the wire layout's (DEFAULT_GEOMETRY, LIMITS);
 * once each field is within them, the whole is checked with the device's own computeGeometry (do the
 * channels leave a data window?), so what the device would refuse at `vm start` is refused here, naming
 * the field to change.
 */
export const deviceSchema = z
  .object({
    regionSizeBytes: z
      .number()
      .int()
      .refine(powerOfTwo, 'must be a power of two')
      .min(LIMITS.MIN_REGION_BYTES)
      .max(LIMITS.MAX_REGION_BYTES)
      .default(DEFAULT_GEOMETRY.regionSizeBytes),
    vectors: z.number().int().min(1).max(LIMITS.MAX_VECTORS).default(DEFAULT_GEOMETRY.vectors),
    channels: z.number().int().min(1).max(LIMITS.MAX_CHANNELS).default(DEFAULT_GEOMETRY.channelCount),
    ringSlots: z.number().int().refine(powerOfTwo, 'must be a power of two').min(2).max(LIMITS.MAX_RING_SLOTS).default(DEFAULT_GEOMETRY.ringSlots),
    slotSizeBytes: z
      .number()
      .int()
      .multipleOf(64)
      .min(LIMITS.MIN_SLOT_BYTES)
      .max(LIMITS.MAX_SLOT_BYTES)
      .default(DEFAULT_GEOMETRY.slotSizeBytes),
  })
  .strict()
  .superRefine(
    (device, ctx) => {
      const result = computeGeometry(deviceGeometry(device));
      if (!result.ok) ctx.addIssue({ code: 'custom', path: [DEVICE_FIELDS[result.field]], message: result.reason });
    },
    // A field out of its bounds is reported once, by its own check.
    { when: (payload) => payload.issues.length === 0 },
  );

export type DeviceDefinition = z.infer<typeof deviceSchema>;

/** A definition's device section as the device's geometry options. */
export function deviceGeometry(device: DeviceDefinition): GeometryOptions {
  return {
    regionSizeBytes: device.regionSizeBytes,
    vectors: device.vectors,
    channelCount: device.channels,
    ringSlots: device.ringSlots,
    slotSizeBytes: device.slotSizeBytes,
  };
}

export const filesSchema = z
  .object({
    root: z.string().startsWith('/', 'must be an absolute path'),
    readOnly: z.boolean().default(false),
    quotaBytes: z.number().int().min(0).default(1024 * 1024 * 1024),
    maxFileBytes: z.number().int().min(0).default(1024 * 1024 * 1024),
    maxEntries: z.number().int().min(0).default(DEFAULT_FILE_LIMITS.maxEntries),
    maxOpenFiles: z.number().int().min(1).max(1024).default(16),
    fileMode: z.number().int().min(0).max(0o777).default(0o644),
    dirMode: z.number().int().min(0).max(0o777).default(0o755),
    allowExecutable: z.boolean().default(false),
    allowUnsafeNames: z.boolean().default(DEFAULT_FILE_LIMITS.allowUnsafeNames),
    allowHardLinks: z.boolean().default(DEFAULT_FILE_LIMITS.allowHardLinks),
    owner: z.object({ uid: z.number().int().min(0), gid: z.number().int().min(0) }).strict().optional(),
  })
  .strict();

export const restartSchema = z
  .object({
    policy: z.enum(['never', 'on-failure']).default('never'),
    maxRestarts: z.number().int().min(0).max(100).default(3),
    backoffMs: z.number().int().min(0).max(600_000).default(1000),
    /** After this long running without a crash, the restart count starts again from 0. */
    resetAfterMs: z.number().int().min(1000).max(7 * 24 * 3_600_000).default(600_000),
  })
  .strict();

/** CPU scheduling of the VM's vCPU threads (docs/decisions/scheduling.md). */
export const cpuSchema = z
  .object({
    /** Base weight on the cgroup v2 cpu.weight scale (100 = an ordinary process; v1 cpu.shares 1024). */
    weight: z.number().int().min(1).max(10_000).default(100),
    /** Hard cap: percent of one host CPU the vCPU threads may use (cpu.max / CFS quota); none by default. */
    capPercent: z.number().int().min(1).max(102_400).optional(),
    /** How long in total the VM may run above its base weight before it is held at the base until refilled. */
    boostBudgetSec: z.number().int().min(0).max(86_400).default(60),
  })
  .strict();

const IPV4_PATTERN = /^(25[0-5]|2[0-4][0-9]|1?[0-9]{1,2})(\.(25[0-5]|2[0-4][0-9]|1?[0-9]{1,2})){3}$/;
const port = z.number().int().min(1).max(65_535);
const macField = z
  .string()
  .regex(MAC_PATTERN, 'a MAC like 52:54:00:12:34:56 (lower-case hex)')
  .refine((mac) => (parseInt(mac.slice(0, 2), 16) & 1) === 0, 'must be a unicast MAC (the first byte even)')
  .optional()
  .describe('default: 52:54:00 and three bytes of a hash of the VM name (stable across restarts)');
const ifname = z.string().regex(IFNAME_PATTERN, 'a Linux interface name: 1-15 of letters, digits, _ . -');

/** One host port forwarded to the guest under user-mode networking (QEMU hostfwd). */
export const portForwardSchema = z
  .object({
    protocol: z.enum(['tcp', 'udp']).default('tcp'),
    /** 127.0.0.1 by default: only the host reaches it. 0.0.0.0 opens it to the host's networks. */
    hostAddress: z.string().regex(IPV4_PATTERN, 'an IPv4 address like 127.0.0.1').default('127.0.0.1'),
    hostPort: port,
    guestPort: port,
  })
  .strict();

/**
 * The VM's network (docs/decisions/network.md). none: no NIC. user: QEMU's user-mode network (NAT; the
 * guest reaches the host's loopback at 10.0.2.2) with port forwards. bridge: a tap QEMU creates, put on an
 * existing host bridge by the daemon. tap: an existing tap interface.
 */
export const networkSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('none') }).strict(),
  z
    .object({ mode: z.literal('user'), forwards: z.array(portForwardSchema).max(32).default([]), mac: macField })
    .strict()
    .superRefine((net, ctx) => {
      const seen = new Set<string>();
      net.forwards.forEach((f, i) => {
        const key = `${f.protocol}:${f.hostAddress}:${f.hostPort}`;
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['forwards', i, 'hostPort'], message: `${key} is forwarded twice` });
        seen.add(key);
      });
    }),
  z.object({ mode: z.literal('bridge'), bridge: ifname, mac: macField }).strict(),
  z.object({ mode: z.literal('tap'), ifname, mac: macField }).strict(),
]);

export type NetworkDefinitionInput = z.input<typeof networkSchema>;

export const vmDefinitionSchema = z
  .object({
    name: z.string().regex(VM_NAME_PATTERN, 'use 1-32 characters: lower-case letters, digits, - and _, starting with a letter or digit'),
    memoryMiB: z.number().int().min(64).max(1024 * 1024).default(256),
    cpus: z.number().int().min(1).max(64).default(1),
    boot: z.union([kernelBootSchema, diskBootSchema]).optional().describe('default: the test image from images/build'),
    accel: z.enum(['tcg', 'kvm', 'auto']).default('auto'),
    device: deviceSchema.default(deviceSchema.parse({})),
    files: filesSchema.optional(),
    chatGroup: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/).optional(),
    /** QEMU's -cpu; default: `host` under KVM, TCG_DEFAULT_CPU_MODEL under TCG (docs/decisions/cpu-model.md). */
    cpuModel: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.,=+-]{0,127}$/, 'a QEMU CPU model with its options, e.g. max,erms=off (letters, digits and _ . , = + -)')
      .optional(),
    restart: restartSchema.default(restartSchema.parse({})),
    cpu: cpuSchema.default(cpuSchema.parse({})),
    powerdownTimeoutMs: z.number().int().min(0).max(600_000).default(30_000),
    network: networkSchema.default({ mode: 'none' }),
  })
  .strict();

export type VmDefinition = z.infer<typeof vmDefinitionSchema>;
export type VmDefinitionInput = z.input<typeof vmDefinitionSchema>;

export type { FieldProblem };

/** Every problem with a definition, each naming the field and why. */
export const definitionProblems = zodProblems;
