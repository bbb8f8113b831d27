import { describe, expect, it } from 'vitest';
import { consoleAnswered } from './console-linger.js';

describe('consoleAnswered', () => {
  it('sees a shell prompt at the very end of what the guest sent', () => {
    expect(consoleAnswered('piped-42\r\n/ # ')).toBe(true);
    expect(consoleAnswered('ok\r\nuser@web:~$ ')).toBe(true);
    expect(consoleAnswered('ok\n\x1b[1;32mroot@web\x1b[0m:/# ')).toBe(true);
  });
  it('does not while the answer is still coming', () => {
    expect(consoleAnswered('echo piped-$((6*7))\r\n')).toBe(false);
    expect(consoleAnswered('piped-42\r\n')).toBe(false);
    expect(consoleAnswered('progress 50%')).toBe(false);
    expect(consoleAnswered('')).toBe(false);
  });
});
