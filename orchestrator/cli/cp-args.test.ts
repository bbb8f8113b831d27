import { describe, expect, it } from 'vitest';
import { baseName, parseCpArgs, parseCpEndpoint, type ParsedCp } from './cp-args.js';

const usage = (src: string, dst?: string): string => {
  const p: ParsedCp = parseCpArgs(dst === undefined ? [src] : [src, dst]);
  if (p.ok) throw new Error(`expected a usage error, got ${JSON.stringify(p.command)}`);
  return p.message;
};

describe('parseCpEndpoint', () => {
  it('reads VM:PATH only when the part before the first colon is a VM name', () => {
    expect(parseCpEndpoint('vm1:/etc/hostname')).toEqual({ kind: 'vm', vm: 'vm1', path: '/etc/hostname' });
    expect(parseCpEndpoint('web_2:/a:b')).toEqual({ kind: 'vm', vm: 'web_2', path: '/a:b' });
    expect(parseCpEndpoint('vm1:')).toEqual({ kind: 'vm', vm: 'vm1', path: '' });
    expect(parseCpEndpoint('a:b')).toEqual({ kind: 'vm', vm: 'a', path: 'b' });
    for (const local of ['./a:b', '/abs/a:b', 'dir/a:b', 'VM1:/x', ':/x', 'file', '../x', `${'a'.repeat(33)}:/x`, '.:x']) {
      expect(parseCpEndpoint(local), local).toEqual({ kind: 'local', path: local });
    }
  });
});

describe('parseCpArgs', () => {
  it('parses an upload and a download', () => {
    expect(parseCpArgs(['./file', 'vm1:/tmp/file'])).toEqual({
      ok: true,
      command: { kind: 'cp', direction: 'push', vm: 'vm1', localPath: './file', guestPath: '/tmp/file' },
    });
    expect(parseCpArgs(['vm1:/etc/hostname', './hostname'])).toEqual({
      ok: true,
      command: { kind: 'cp', direction: 'pull', vm: 'vm1', guestPath: '/etc/hostname', localPath: './hostname' },
    });
    expect(parseCpArgs(['./a:b', 'vm1:/x:y'])).toMatchObject({ ok: true, command: { direction: 'push', localPath: './a:b', guestPath: '/x:y' } });
    expect(parseCpArgs(['vm1:/x', '/tmp/a:b'])).toMatchObject({ ok: true, command: { direction: 'pull', localPath: '/tmp/a:b' } });
  });

  it('adds the local basename to a guest directory given with a trailing /', () => {
    expect(parseCpArgs(['../dir/report.txt', 'vm1:/tmp/'])).toMatchObject({ ok: true, command: { guestPath: '/tmp/report.txt' } });
    expect(parseCpArgs(['report.txt', 'vm1:/'])).toMatchObject({ ok: true, command: { guestPath: '/report.txt' } });
  });

  it('says what is wrong', () => {
    expect(usage('./x')).toMatch(/needs a source and a destination/);
    expect(parseCpArgs(['a', 'b', 'c'])).toEqual({ ok: false, message: expect.stringMatching(/unexpected "c"/) });
    expect(usage('vm1:/a', 'vm2:/b')).toMatch(/both "vm1:\/a" and "vm2:\/b" name a VM/);
    expect(usage('./a', './b')).toMatch(/neither "\.\/a" nor "\.\/b" names a VM: one side must be VM:\/PATH/);
    expect(usage('./x', 'a:b')).toBe('guest path "b" in "a:b" must be an absolute path (start with /); a local file whose name has a colon is written ./a:b');
    expect(usage('vm1:', './x')).toMatch(/guest path "" in "vm1:" is empty/);
    expect(usage('vm1:/etc/', './x')).toBe('"vm1:/etc/" names a directory: vmgmt cp copies single files (vmgmt cp -r copies directories)');
    expect(usage('vm1:/etc/..', './x')).toMatch(/names a directory/);
    expect(usage('-', 'vm1:/x')).toMatch(/not stdin or stdout/);
    expect(usage('', 'vm1:/x')).toMatch(/local path is empty/);
    expect(usage('./x', `vm1:/${'x'.repeat(4096)}`)).toMatch(/must be at most 4096 bytes/);
    expect(usage('./x', `vm1:/${'x'.repeat(4094)}/`)).toMatch(/must be at most 4096 bytes/);
  });
});

describe('baseName', () => {
  it('takes the last component, ignoring trailing slashes', () => {
    expect(baseName('/a/b')).toBe('b');
    expect(baseName('/a/b/')).toBe('b');
    expect(baseName('b')).toBe('b');
    expect(baseName('/')).toBe('');
  });
});

describe('parseCpArgs with -r', () => {
  const r = (src: string, dst: string): ParsedCp => parseCpArgs([src, dst], { recursive: true });
  it('takes a guest directory with or without a trailing slash, and gives a local one its name under VM:/DIR/', () => {
    expect(r('vm1:/var/log/', './logs')).toEqual({ ok: true, command: { kind: 'cp', direction: 'pull', vm: 'vm1', guestPath: '/var/log', localPath: './logs', recursive: true } });
    expect(r('vm1:/', './root')).toEqual({ ok: true, command: { kind: 'cp', direction: 'pull', vm: 'vm1', guestPath: '/', localPath: './root', recursive: true } });
    expect(r('./site', 'vm1:/srv/')).toEqual({ ok: true, command: { kind: 'cp', direction: 'push', vm: 'vm1', localPath: './site', guestPath: '/srv/site', recursive: true } });
    expect(r('./site/', 'vm1:/srv/www')).toEqual({ ok: true, command: { kind: 'cp', direction: 'push', vm: 'vm1', localPath: './site/', guestPath: '/srv/www', recursive: true } });
  });

  it('refuses a source without a name for VM:/DIR/, and a guest path ending in . or ..', () => {
    for (const [src, dst] of [['.', 'vm1:/srv/'], ['..', 'vm1:/srv/'], ['vm1:/a/..', './x'], ['vm1:/a/.', './x']] as const) {
      const p = r(src, dst);
      expect(p.ok, `${src} ${dst}`).toBe(false);
    }
    expect(r('.', 'vm1:/srv/')).toMatchObject({ message: expect.stringMatching(/has no name to give the copy/) });
  });
});
