import { describe, expect, it } from 'vitest';
import { ExecTerminals } from './exec-terminals.js';

describe('ExecTerminals', () => {
  it('keeps a size asked for before the command has its terminal, then passes each on; forgets a closed session', () => {
    const terminals = new ExecTerminals();
    const t = terminals.open('web');
    const seen: string[] = [];
    terminals.resize('web', t.id, 30, 100);
    terminals.resize('web', t.id, 40, 120);
    t.attach((rows, cols) => seen.push(`${rows}x${cols}`));
    expect(seen).toEqual(['40x120']);
    terminals.resize('web', t.id, 50, 132);
    expect(seen).toEqual(['40x120', '50x132']);
    t.close();
    expect(terminals.size).toBe(0);
    expect(() => terminals.resize('web', t.id, 1, 1)).toThrow(/has no exec --tty session/);
  });

  it('refuses an id of another VM', () => {
    const terminals = new ExecTerminals();
    const t = terminals.open('web');
    expect(() => terminals.resize('db', t.id, 24, 80)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });
});
