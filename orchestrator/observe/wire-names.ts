// Names for the wire layout's numbers, as the API and the metrics show them: `file`, `file_read`, `ok`.
// Values the layout does not name (the core folds them into ANSWER_OTHER) are `other`. Pure.
import { ANSWER_OTHER, type AnswerCount, type ChannelCount } from '../../device-backend/core/device-core.js';
import { MODE, MSG_TYPE, STATUS } from '../../device-backend/layout/wire-layout.js';

const byValue = (entries: Array<[string, number]>): ReadonlyMap<number, string> => new Map(entries.map(([name, value]) => [value, name.toLowerCase()]));

const MODE_NAMES = byValue(Object.entries(MODE));
const TYPE_NAMES = byValue(Object.entries(MSG_TYPE));
const STATUS_NAMES = byValue(Object.entries(STATUS).map(([name, s]) => [name, s.code]));

const nameOf = (names: ReadonlyMap<number, string>, value: number): string => (value === ANSWER_OTHER ? 'other' : (names.get(value) ?? 'other'));

export const modeName = (mode: number): string => nameOf(MODE_NAMES, mode);
export const typeName = (type: number): string => nameOf(TYPE_NAMES, type);
export const statusName = (status: number): string => nameOf(STATUS_NAMES, status);

/** The core's answer counts with names; two numbers that both read `other` are added together. */
export function namedAnswerCounts(counts: readonly AnswerCount[]): Array<{ mode: string; type: string; status: string; count: number }> {
  const out = new Map<string, { mode: string; type: string; status: string; count: number }>();
  for (const c of counts) {
    const named = { mode: modeName(c.mode), type: typeName(c.type), status: statusName(c.status) };
    const key = `${named.mode}/${named.type}/${named.status}`;
    const seen = out.get(key);
    if (seen) seen.count += c.count;
    else out.set(key, { ...named, count: c.count });
  }
  return [...out.values()];
}

/** One channel's counters with names: its mode now, and answers by status (two `other`s added together). */
export function namedChannelCounts(counts: readonly ChannelCount[]): Array<{ channel: number; mode: string; messages: number; protocolErrors: number; resets: number; answers: Array<{ status: string; count: number }> }> {
  return counts.map((c) => {
    const answers = new Map<string, number>();
    for (const a of c.answers) answers.set(statusName(a.status), (answers.get(statusName(a.status)) ?? 0) + a.count);
    return { channel: c.channel, mode: modeName(c.mode), messages: c.messages, protocolErrors: c.protocolErrors, resets: c.resets, answers: [...answers].map(([status, count]) => ({ status, count })) };
  });
}
