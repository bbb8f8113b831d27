import { describe, expect, it } from 'vitest';
import { ANSWER_OTHER } from '../../device-backend/core/device-core.js';
import { MODE, MSG_TYPE, STATUS } from '../../device-backend/layout/wire-layout.js';
import { modeName, namedAnswerCounts, namedChannelCounts, statusName, typeName } from './wire-names.js';

describe('wire names', () => {
  it('names modes, types and statuses in lower case, and unknown values other', () => {
    expect(modeName(MODE.FILE)).toBe('file');
    expect(typeName(MSG_TYPE.FILE_READ)).toBe('file_read');
    expect(statusName(STATUS.NOT_FOUND.code)).toBe('not_found');
    expect(typeName(ANSWER_OTHER)).toBe('other');
    expect(statusName(9999)).toBe('other');
  });

  it('adds counts that end up with the same names', () => {
    expect(
      namedAnswerCounts([
        { mode: MODE.FILE, type: MSG_TYPE.FILE_READ, status: 0, count: 3 },
        { mode: MODE.FILE, type: ANSWER_OTHER, status: 1, count: 1 },
        { mode: MODE.FILE, type: 0x7777, status: 1, count: 2 },
      ]),
    ).toEqual([
      { mode: 'file', type: 'file_read', status: 'ok', count: 3 },
      { mode: 'file', type: 'other', status: 'unknown_type', count: 3 },
    ]);
  });

  it('names each channel\'s mode and answer statuses, adding statuses that both read other', () => {
    expect(
      namedChannelCounts([
        { channel: 0, mode: MODE.CHAT, messages: 4, protocolErrors: 1, resets: 2, answers: [{ status: 0, count: 3 }, { status: ANSWER_OTHER, count: 1 }, { status: 9999, count: 2 }] },
        { channel: 1, mode: 0x5555, messages: 0, protocolErrors: 0, resets: 0, answers: [] },
      ]),
    ).toEqual([
      { channel: 0, mode: 'chat', messages: 4, protocolErrors: 1, resets: 2, answers: [{ status: 'ok', count: 3 }, { status: 'other', count: 3 }] },
      { channel: 1, mode: 'other', messages: 0, protocolErrors: 0, resets: 0, answers: [] },
    ]);
  });
});
