import { describe, expect, it } from 'vitest';
import { resizeForwarder, type TerminalSize } from './exec-resize.js';

describe('resizeForwarder', () => {
  it('sends a change, folds the changes made while a request is out into one with the latest size', async () => {
    let size: TerminalSize = { rows: 24, cols: 80 };
    const sent: TerminalSize[] = [];
    let release!: () => void;
    const fwd = resizeForwarder({
      read: () => size,
      send: (s) => {
        sent.push(s);
        return new Promise<void>((r) => (release = r));
      },
      initial: { rows: 24, cols: 80 },
      onError: (err) => {
        throw err;
      },
    });
    fwd.changed(); // the same as the start: nothing sent
    await fwd.idle();
    expect(sent).toEqual([]);
    size = { rows: 30, cols: 100 };
    fwd.changed();
    size = { rows: 31, cols: 101 };
    fwd.changed();
    size = { rows: 40, cols: 120 };
    fwd.changed();
    release();
    await new Promise((r) => setImmediate(r));
    release();
    await fwd.idle();
    expect(sent).toEqual([
      { rows: 30, cols: 100 },
      { rows: 40, cols: 120 },
    ]);
  });

  it('reports a failed send once and sends nothing after stop', async () => {
    const errors: unknown[] = [];
    let n = 0;
    const fwd = resizeForwarder({ read: () => ({ rows: 10 + n++, cols: 80 }), send: () => Promise.reject(new Error('gone')), onError: (e) => errors.push(e) });
    fwd.changed();
    await fwd.idle();
    expect(errors).toHaveLength(1);
    fwd.stop();
    fwd.changed();
    await fwd.idle();
    expect(errors).toHaveLength(1);
  });
});
