// Host programs the admin declares as calculation functions (daemon config `calc.programs`): what one is,
// its argv template, and who may call it. Pure: no processes here (calc-program-runner.ts runs them).

/** One declared program, as the daemon's config resolved it (every default filled in). */
export interface CalcProgramSpec {
  /** The function name guests call (a-z 0-9 . _ -), not one of the built-ins'. */
  readonly name: string;
  /** One line for `vmgmt-guest calc --list`. */
  readonly description: string;
  /** argv[0] is an absolute path; no shell. Placeholders: see ARGV_PLACEHOLDERS. */
  readonly argv: readonly string[];
  /** Wall time from the start of the program (CALC_BEGIN) to its exit; then it is killed (CALC_TIMED_OUT). */
  readonly timeoutMs: number;
  /** Output (stdout) past this kills the program (CALC_TOO_LARGE). */
  readonly maxOutputBytes: number;
  /** Jobs of this program at once, per VM and on the whole host (more: CALC_BUSY). */
  readonly maxPerVm: number;
  readonly maxHostWide: number;
  /** The cgroup of each job: percent of one CPU (cpu.max / CFS quota), memory (memory.max), processes. */
  readonly cpuPercent: number;
  readonly memoryMaxBytes: number;
  readonly pidsMax: number;
  /** Who may call it: a VM named here, or a VM whose group (its chatGroup) is named here. Empty: nobody. */
  readonly allow: { readonly vms: readonly string[]; readonly groups: readonly string[] };
  /** The unprivileged user and group it runs as (names or numbers); never root. */
  readonly user: string;
  readonly group: string;
  /** What the guest may pass (`vmgmt-guest calc NAME ARGS...`): at most `max` arguments (0: none), each matching
   * the whole of `pattern`; they go where the argv template says `{args}`. */
  readonly args: { readonly max: number; readonly pattern: string };
}

/** The `calc` section of the daemon's config, resolved. */
export interface CalcSettings {
  /** Bytes of calculation output the daemon holds for one VM at once (all its channels' jobs). */
  readonly outputBudgetBytes: number;
  readonly programs: readonly CalcProgramSpec[];
}

/** What a VM is, as far as calc's allow-list is concerned. */
export interface CalcCaller {
  readonly vm: string;
  readonly group?: string;
}

/** Values an argv template may use, as `{name}` inside any argument (`{{` and `}}` are literal braces). */
export const ARGV_PLACEHOLDERS = {
  vm: 'the calling VM\'s name',
  group: 'the calling VM\'s group (its chatGroup; empty without one)',
  function: 'the function\'s name',
  job: 'the job id (unique on the VM\'s channel while it runs)',
  inputBytes: 'the input size the guest declared, in bytes (-1 when it streams input of unknown size)',
  args: 'the guest\'s arguments (at most args.max, each matching args.pattern), each an argument of its own; only as a whole argument',
} as const;
export type ArgvPlaceholder = keyof typeof ARGV_PLACEHOLDERS;
export type ArgvValues = Readonly<Record<Exclude<ArgvPlaceholder, 'args'>, string>> & { readonly args: readonly string[] };

/** What the guest's arguments may look like unless the config says otherwise: no leading `-` (never an option). */
export const DEFAULT_ARG_PATTERN = '[A-Za-z0-9][A-Za-z0-9._,:=+-]{0,127}';

type Piece = { text: string } | { name: string };

/** An argument template in pieces, or why it is not one. Pure. */
export function parseArgTemplate(arg: string): { ok: true; pieces: Piece[] } | { ok: false; reason: string } {
  const pieces: Piece[] = [];
  let text = '';
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i]!;
    if ((c === '{' || c === '}') && arg[i + 1] === c) {
      text += c;
      i++;
    } else if (c === '{') {
      const end = arg.indexOf('}', i);
      if (end < 0) return { ok: false, reason: `unclosed { at character ${i} (write {{ for a literal brace)` };
      const name = arg.slice(i + 1, end);
      if (!Object.hasOwn(ARGV_PLACEHOLDERS, name)) return { ok: false, reason: `unknown placeholder {${name}}: use one of ${Object.keys(ARGV_PLACEHOLDERS).map((k) => `{${k}}`).join(' ')}` };
      if (name === 'args' && arg !== '{args}') return { ok: false, reason: '{args} stands for several arguments: it must be a whole argument of its own' };
      if (text) pieces.push({ text });
      text = '';
      pieces.push({ name });
      i = end;
    } else if (c === '}') {
      return { ok: false, reason: `lone } at character ${i} (write }} for a literal brace)` };
    } else {
      text += c;
    }
  }
  if (text) pieces.push({ text });
  return { ok: true, pieces };
}

/** The argv of one job: each placeholder replaced by its value, as one argument (never split, no shell);
 * `{args}` by the guest's arguments, one argument each. */
export function expandArgv(template: readonly string[], values: ArgvValues): string[] {
  return template.flatMap((arg) => {
    if (arg === '{args}') return [...values.args];
    const parsed = parseArgTemplate(arg);
    // The config schema refuses bad templates; one here is our bug.
    if (!parsed.ok) throw new Error(`argv template ${JSON.stringify(arg)}: ${parsed.reason}`);
    return [parsed.pieces.map((p) => ('text' in p ? p.text : values[p.name as Exclude<ArgvPlaceholder, 'args'>])).join('')];
  });
}

/** Why a program refuses these guest arguments, or undefined when it takes them. Pure. */
export function refuseArgs(spec: Pick<CalcProgramSpec, 'name' | 'args'>, args: readonly string[]): string | undefined {
  if (spec.args.max === 0) return `${spec.name} takes no arguments from a guest (its calc config has no args.max)`;
  if (args.length > spec.args.max) return `${spec.name} takes at most ${spec.args.max} arguments, got ${args.length}`;
  const re = new RegExp(`^(?:${spec.args.pattern})$`, 'u');
  const bad = args.findIndex((a) => !re.test(a));
  if (bad >= 0) return `argument ${bad + 1} (${JSON.stringify(args[bad]!.slice(0, 64))}) of ${spec.name} does not match the host's pattern ${spec.args.pattern}`;
  return undefined;
}

/** Whether `caller` may call `program`: its name or its group is on the allow-list. */
export function mayCall(program: Pick<CalcProgramSpec, 'allow'>, caller: CalcCaller): boolean {
  return program.allow.vms.includes(caller.vm) || (caller.group !== undefined && program.allow.groups.includes(caller.group));
}
