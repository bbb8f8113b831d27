// A parser of the Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, and sample lines
// `name{label="value",...} value [timestamp]`, with the format's escapes (\\, \", \n in label values).
// Enough to check what the daemon serves (tests, `bench/`), not a full client. Pure.

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: string;
  help: string;
  samples: PromSample[];
}

export type PromParse = { ok: true; families: Map<string, PromFamily> } | { ok: false; line: number; reason: string };

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** The family a sample belongs to: histogram and summary samples carry suffixes. */
function familyName(sample: string, families: Map<string, PromFamily>): string {
  if (families.has(sample)) return sample;
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (sample.endsWith(suffix) && families.has(sample.slice(0, -suffix.length))) return sample.slice(0, -suffix.length);
  }
  return sample;
}

export function parsePromText(text: string): PromParse {
  const families = new Map<string, PromFamily>();
  const family = (name: string): PromFamily => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', help: '', samples: [] }));
    return f;
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const fail = (reason: string): PromParse => ({ ok: false, line: i + 1, reason: `${reason}: ${line.slice(0, 120)}` });
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s?(.*)$/.exec(line);
      if (!m) continue; // other comments
      const f = family(m[2]!);
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) return fail(`unknown metric type ${JSON.stringify(m[3])}`);
        f.type = m[3]!;
      } else {
        f.help = m[3]!.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (!name) return fail('no metric name');
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      for (;;) {
        rest = rest.trimStart();
        if (rest.startsWith('}')) {
          rest = rest.slice(1);
          break;
        }
        const label = LABEL.exec(rest)?.[0];
        if (!label) return fail('bad label name');
        rest = rest.slice(label.length);
        if (!rest.startsWith('="')) return fail(`label ${label} has no ="value"`);
        rest = rest.slice(2);
        let value = '';
        for (;;) {
          const c = rest[0];
          if (c === undefined) return fail(`label ${label}'s value does not end`);
          rest = rest.slice(1);
          if (c === '"') break;
          if (c === '\\') {
            const e = rest[0];
            rest = rest.slice(1);
            value += e === 'n' ? '\n' : e === '"' ? '"' : e === '\\' ? '\\' : `\\${e ?? ''}`;
          } else value += c;
        }
        if (Object.hasOwn(labels, label)) return fail(`label ${label} given twice`);
        labels[label] = value;
        rest = rest.trimStart();
        if (rest.startsWith(',')) rest = rest.slice(1);
        else if (!rest.startsWith('}')) return fail('labels must be separated by commas');
      }
    }
    const parts = rest.trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2 || parts[0] === '') return fail('a sample needs a value (and at most a timestamp)');
    // As Prometheus reads them (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`).
    const v = parts[0]!;
    const word = v.toLowerCase();
    const value = word === '+inf' || word === 'inf' ? Infinity : word === '-inf' ? -Infinity : word === 'nan' ? NaN : Number(v);
    if (Number.isNaN(value) && word !== 'nan') return fail(`value ${JSON.stringify(v)} is not a number`);
    family(familyName(name, families)).samples.push({ name, labels, value });
  }
  return { ok: true, families };
}

/** The one sample of `name` whose labels include `labels`; undefined when none does, an error when several do. */
export function promValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const matches: PromSample[] = [];
  for (const f of families.values()) for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) matches.push(s);
  if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}: give more labels`);
  return matches[0]?.value;
}
