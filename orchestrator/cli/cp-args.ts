// `vmgmt cp SRC DST` arguments → a push or pull. Exactly one side is VM:PATH: a VM name (VM_NAME_PATTERN),
// a colon, and an absolute guest path. Anything else is a local path, so `./a:b` and `/x/a:b` are local
// files; a local file named `a:b` is written `./a:b`. Pure.
import { guestPathSchema, VM_NAME_PATTERN } from '../api/api-contract.js';

export type CpEndpoint = { kind: 'vm'; vm: string; path: string } | { kind: 'local'; path: string };

export type CpCommand =
  /** Local file → guest. guestPath already has the local basename added when DST ended with `/`. */
  | { kind: 'cp'; direction: 'push'; vm: string; localPath: string; guestPath: string; recursive?: true }
  /** Guest file → local. localPath may be an existing directory: the command adds the guest basename. */
  | { kind: 'cp'; direction: 'pull'; vm: string; guestPath: string; localPath: string; recursive?: true };

export type ParsedCp = { ok: true; command: CpCommand } | { ok: false; message: string };

export function parseCpEndpoint(arg: string): CpEndpoint {
  const colon = arg.indexOf(':');
  if (colon > 0) {
    const vm = arg.slice(0, colon);
    if (VM_NAME_PATTERN.test(vm)) return { kind: 'vm', vm, path: arg.slice(colon + 1) };
  }
  return { kind: 'local', path: arg };
}

export function parseCpArgs(args: readonly string[], opts: { recursive?: boolean } = {}): ParsedCp {
  const parsed = parseCpPair(args, opts.recursive === true);
  return parsed.ok && opts.recursive === true ? { ok: true, command: { ...parsed.command, recursive: true } } : parsed;
}

function parseCpPair(args: readonly string[], recursive: boolean): ParsedCp {
  if (args.length !== 2) {
    return usage(
      args.length < 2
        ? '`vmgmt cp` needs a source and a destination: vmgmt cp FILE VM:/PATH or vmgmt cp VM:/PATH FILE'
        : `\`vmgmt cp\` takes a source and a destination; unexpected ${JSON.stringify(args[2])}`,
    );
  }
  const [srcArg, dstArg] = args as [string, string];
  const src = parseCpEndpoint(srcArg);
  const dst = parseCpEndpoint(dstArg);
  if (src.kind === 'vm' && dst.kind === 'vm') {
    return usage(`both ${JSON.stringify(srcArg)} and ${JSON.stringify(dstArg)} name a VM: copy to a local file first, then on to the other VM`);
  }
  if (src.kind === 'local' && dst.kind === 'local') {
    return usage(`neither ${JSON.stringify(srcArg)} nor ${JSON.stringify(dstArg)} names a VM: one side must be VM:/PATH (e.g. vm1:/tmp/file)`);
  }
  const vmSide = (src.kind === 'vm' ? src : dst) as CpEndpoint & { kind: 'vm' };
  const local = (src.kind === 'local' ? src : dst) as CpEndpoint & { kind: 'local' };
  const vmArg = src.kind === 'vm' ? srcArg : dstArg;

  const localProblem = checkLocalPath(local.path);
  if (localProblem) return usage(localProblem);
  const guestProblem = checkGuestPath(vmSide.path, vmArg);
  if (guestProblem) return usage(guestProblem);

  if (src.kind === 'local') {
    if (recursive && (baseName(local.path) === '' || baseName(local.path) === '.' || baseName(local.path) === '..') && vmSide.path.endsWith('/')) {
      return usage(`${JSON.stringify(local.path)} has no name to give the copy in ${JSON.stringify(vmArg)}: name the guest directory, e.g. ${vmSide.vm}:${vmSide.path}copy`);
    }
    const guestPath = vmSide.path.endsWith('/') ? vmSide.path + baseName(local.path) : vmSide.path;
    const longProblem = checkGuestPath(guestPath, `${vmSide.vm}:${guestPath}`);
    if (longProblem) return usage(longProblem);
    return { ok: true, command: { kind: 'cp', direction: 'push', vm: vmSide.vm, localPath: local.path, guestPath } };
  }
  if (recursive) {
    if (baseName(vmSide.path) === '.' || baseName(vmSide.path) === '..') return usage(`${JSON.stringify(vmArg)}: name the guest directory without . or .. at its end`);
    const guestPath = vmSide.path.length > 1 ? vmSide.path.replace(/\/+$/, '') : vmSide.path;
    return { ok: true, command: { kind: 'cp', direction: 'pull', vm: vmSide.vm, guestPath, localPath: local.path } };
  }
  if (vmSide.path.endsWith('/') || baseName(vmSide.path) === '.' || baseName(vmSide.path) === '..') {
    return usage(`${JSON.stringify(vmArg)} names a directory: vmgmt cp copies single files (vmgmt cp -r copies directories)`);
  }
  return { ok: true, command: { kind: 'cp', direction: 'pull', vm: vmSide.vm, guestPath: vmSide.path, localPath: local.path } };
}

/** The last path component, ignoring trailing slashes (`/a/b/` → `b`; `/` → ``). */
export function baseName(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

function checkLocalPath(p: string): string | undefined {
  if (p === '') return 'the local path is empty';
  if (p === '-') return 'vmgmt cp copies files, not stdin or stdout: give a file path (./- for a file named -)';
  return undefined;
}

function checkGuestPath(p: string, arg: string): string | undefined {
  const parsed = guestPathSchema.safeParse(p);
  if (parsed.success) return undefined;
  const why = parsed.error.issues[0]?.message ?? 'is not a valid guest path';
  const colonHint = p.startsWith('/') ? '' : `; a local file whose name has a colon is written ./${arg}`;
  return `guest path ${JSON.stringify(p)} in ${JSON.stringify(arg)} ${why}${colonHint}`;
}

function usage(message: string): ParsedCp {
  return { ok: false, message };
}
