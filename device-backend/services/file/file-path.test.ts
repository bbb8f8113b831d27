import { describe, expect, it } from 'vitest';
import { unsafeNameReason } from './file-path.js';

describe('unsafeNameReason', () => {
  it.each(['a', 'report.txt', 'a-b', 'x--', 'ünïcödé', '日本', 'with space', '.hidden'])('lets %j through', (name) => {
    expect(unsafeNameReason(name)).toBeUndefined();
  });

  it.each([
    ['-rf', "starts with '-'"],
    ['-', "starts with '-'"],
    ['a\nb', 'U+000a'],
    ['a\rb', 'U+000d'],
    ['tab\there', 'U+0009'],
    ['\u001b[31mred', 'U+001b'],
    ['del\u007f', 'U+007f'],
    ['c1\u0085', 'U+0085'],
    ['line\u2028sep', 'U+2028'],
  ])('refuses %j', (name, why) => {
    expect(unsafeNameReason(name)).toContain(why);
  });
});
