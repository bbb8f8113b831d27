// Property tests of every decoder of guest-written bytes (decoder-properties.ts), in the unit suite with a
// fixed seed; VMGMT_FUZZ_SEED / VMGMT_FUZZ_PATH replay a failure.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { decoderProperties } from './decoder-properties.js';
import { unitParams } from './fuzz-config.js';

const groups = new Map<string, ReturnType<typeof decoderProperties>[number][]>();
for (const p of decoderProperties()) groups.set(p.group, [...(groups.get(p.group) ?? []), p]);

for (const [group, props] of groups) {
  describe(group, () => {
    for (const p of props) it(p.name, () => fc.assert(p.property, unitParams(p.runs)));
  });
}
