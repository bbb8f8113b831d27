import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, type LogLevel } from './logger.js';

describe('logger', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('writes one JSON line per call, msg first and then the fields, at the level asked for now', () => {
    const lines: string[] = [];
    let level: LogLevel = 'info';
    const log = createLogger({ write: (l) => void lines.push(l), level: () => level, now: () => new Date('2026-12-01T00:00:00Z') });
    log.debug('hidden');
    log.info('shown', { a: 1 });
    level = 'debug';
    log.child({ vm: 'web' }).debug('now shown', { b: 'x' });
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { level: 'info', time: '2026-12-01T00:00:00.000Z', msg: 'shown', a: 1 },
      { level: 'debug', time: '2026-12-01T00:00:00.000Z', msg: 'now shown', vm: 'web', b: 'x' },
    ]);
    expect(lines[1]).toMatch(/"msg":"now shown","vm":"web"/);
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
  });

  it("a VM's child writes its lines to its own file too, until it is closed", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-log-'));
    dirs.push(dir);
    const file = path.join(dir, 'daemon.log');
    const lines: string[] = [];
    const root = createLogger({ write: (l) => void lines.push(l) });
    const vm = root.child({ vm: 'db' }, { file });
    vm.warn('disk slow', { ms: 12 });
    root.info('not about a VM');
    vm.flush();
    expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).msg)).toEqual(['disk slow']);
    vm.close();
    vm.info('after close');
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['disk slow', 'not about a VM', 'after close']);
    expect(readFileSync(file, 'utf8')).not.toMatch(/after close/);
  });
});
