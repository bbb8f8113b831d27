// The `calc` section of the daemon's config: host programs guests may call as calculation functions, and
// the per-VM budget for calculation output the daemon holds. Reloaded on SIGHUP: a running job keeps the
// settings it started with; the next CALC_BEGIN sees the new ones.
import { z } from 'zod';
import { CALC_LIMITS } from '../../device-backend/layout/wire-layout.js';
import { BUILTIN_FUNCTIONS } from '../../device-backend/services/calc/calc-functions.js';
import { type CalcProgramSpec, type CalcSettings, DEFAULT_ARG_PATTERN, parseArgTemplate } from '../../device-backend/services/calc/calc-program.js';

const FUNCTION_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const BUILTIN_NAMES = new Set(BUILTIN_FUNCTIONS.map((f) => f.name));
/** A user or group: a name as in /etc/passwd, or a number; root (0) is refused when it is resolved too. */
const account = z
  .string()
  .regex(/^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$/, 'a user or group name (a-z 0-9 _ -) or a number')
  .refine((s) => s !== 'root' && !/^0+$/.test(s), 'input from a guest never runs as root: name an unprivileged account');

const argvArg = z
  .string()
  .max(4096)
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
  .superRefine((s, ctx) => {
    const parsed = parseArgTemplate(s);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  });

export const calcProgramSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(CALC_LIMITS.MAX_FUNCTION_NAME_BYTES)
      .regex(FUNCTION_NAME, 'a-z 0-9 . _ -, starting with a letter or digit')
      .refine((n) => !BUILTIN_NAMES.has(n), 'is a built-in function: choose another name'),
    description: z
      .string()
      .max(CALC_LIMITS.MAX_DESCRIPTION_BYTES)
      .regex(/^[^\n\r\0]*$/, 'one line')
      .refine((s) => Buffer.byteLength(s) <= CALC_LIMITS.MAX_DESCRIPTION_BYTES, `at most ${CALC_LIMITS.MAX_DESCRIPTION_BYTES} bytes of UTF-8`)
      .default(''),
    /** argv[0] absolute (the environment is empty, so there is no PATH); run without a shell. */
    argv: z
      .array(argvArg)
      .min(1)
      .max(256)
      .refine((a) => a.length === 0 || (a[0]!.startsWith('/') && !a[0]!.includes('{')), 'argv[0] must be an absolute path without placeholders'),
    timeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
    maxOutputBytes: z.number().int().min(1).max(CALC_LIMITS.MAX_JOB_BYTES).default(64 * 1024 * 1024),
    concurrency: z
      .object({
        perVm: z.number().int().min(1).max(64).default(1),
        hostWide: z.number().int().min(1).max(1024).default(4),
      })
      .strict()
      .default({ perVm: 1, hostWide: 4 }),
    limits: z
      .object({
        /** Percent of one host CPU (100 = one CPU). */
        cpuPercent: z.number().int().min(1).max(102_400).default(100),
        memoryMiB: z.number().int().min(4).max(1024 * 1024).default(256),
        pidsMax: z.number().int().min(1).max(65_536).default(64),
      })
      .strict()
      .default({ cpuPercent: 100, memoryMiB: 256, pidsMax: 64 }),
    /** VMs by name, and VMs by their chatGroup, that may call it; default nobody. */
    allow: z
      .object({
        vms: z.array(z.string().min(1).max(32)).max(1000).default([]),
        groups: z.array(z.string().min(1).max(32)).max(1000).default([]),
      })
      .strict()
      .default({ vms: [], groups: [] }),
    /** Default: the section's user and group. */
    user: account.optional(),
    group: account.optional(),
    /** Arguments a guest may give (`vmgmt-guest calc NAME ARGS...`), put where argv says `{args}`; default none. */
    args: z
      .object({
        max: z.number().int().min(0).max(CALC_LIMITS.MAX_ARGS).default(0),
        /** Each argument must match all of it (a JavaScript regular expression). */
        pattern: z
          .string()
          .min(1)
          .max(1000)
          .refine((s) => {
            try {
              new RegExp(s, 'u');
              return true;
            } catch {
              return false;
            }
          }, 'a JavaScript regular expression')
          .default(DEFAULT_ARG_PATTERN),
      })
      .strict()
      .default({ max: 0, pattern: DEFAULT_ARG_PATTERN }),
  })
  .strict()
  .refine((p) => p.args.max === 0 || p.argv.includes('{args}'), { message: 'args.max is above 0 but argv has no {args} to put them in', path: ['argv'] });

export const calcConfigSchema = z
  .object({
    /** The account programs run as unless a program names its own. */
    user: account.default('nobody'),
    group: account.default('nogroup'),
    /** Calculation output (built-ins and programs) the daemon holds for one VM at once. */
    outputBudgetBytes: z.number().int().min(1).max(64 * CALC_LIMITS.MAX_JOB_BYTES).default(CALC_LIMITS.MAX_JOB_BYTES),
    programs: z
      .array(calcProgramSchema)
      .max(256)
      .default([])
      .superRefine((programs, ctx) => {
        const seen = new Set<string>();
        programs.forEach((p, i) => {
          if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${p.name} is declared twice` });
          seen.add(p.name);
        });
      }),
  })
  .strict();
export type CalcConfigFile = z.infer<typeof calcConfigSchema>;

/** The section as the services use it. Pure. */
export function resolveCalcConfig(file: CalcConfigFile): CalcSettings {
  return {
    outputBudgetBytes: file.outputBudgetBytes,
    programs: file.programs.map(
      (p): CalcProgramSpec => ({
        name: p.name,
        description: p.description || `host program ${p.argv[0]}`,
        argv: [...p.argv],
        timeoutMs: p.timeoutMs,
        maxOutputBytes: p.maxOutputBytes,
        maxPerVm: p.concurrency.perVm,
        maxHostWide: p.concurrency.hostWide,
        cpuPercent: p.limits.cpuPercent,
        memoryMaxBytes: p.limits.memoryMiB * 1024 * 1024,
        pidsMax: p.limits.pidsMax,
        allow: { vms: [...p.allow.vms], groups: [...p.allow.groups] },
        user: p.user ?? file.user,
        group: p.group ?? file.group,
        args: { max: p.args.max, pattern: p.args.pattern },
      }),
    ),
  };
}
