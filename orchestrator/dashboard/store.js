// What the dashboard knows of each VM: its summary, its stats series (from the event stream's
// stats.record, seeded from GET /v1/vms/NAME/stats), device rates (from GET /v1/figures every 2 s), its
// chat log and copies. Bounded: SERIES_POINTS samples and LOG_LINES log lines per VM.
export const SERIES_POINTS = 300;
export const LOG_LINES = 200;

const push = (arr, v, max) => {
  arr.push(v);
  if (arr.length > max) arr.splice(0, arr.length - max);
};

function emptyVm(summary) {
  return {
    summary,
    stats: { t: [], cpu: [], steal: [], demand: [], weight: [], vcpu: [] },
    rates: { t: [], msgs: [], bytes: [], hostCpu: [] },
    figures: null,
    chat: [],
    files: [],
  };
}

export class Store {
  vms = new Map();
  #listeners = new Set();
  #prevFigures;

  onChange(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  changed(what) {
    for (const fn of this.#listeners) fn(what);
  }

  setList(summaries) {
    const names = new Set(summaries.map((s) => s.name));
    for (const name of [...this.vms.keys()]) if (!names.has(name)) this.vms.delete(name);
    for (const s of summaries) {
      const vm = this.vms.get(s.name);
      if (vm) vm.summary = s;
      else this.vms.set(s.name, emptyVm(s));
    }
    this.changed({ kind: 'list' });
  }

  addSample(name, sample, share, host) {
    const vm = this.vms.get(name);
    if (!vm) return;
    const s = vm.stats;
    if (s.t.length && sample.atMs / 1000 <= s.t.at(-1)) return; // seen (seeded and streamed)
    push(s.t, sample.atMs / 1000, SERIES_POINTS);
    push(s.cpu, sample.cpu ? sample.cpu.busy : null, SERIES_POINTS);
    push(s.steal, sample.cpu ? sample.cpu.steal : null, SERIES_POINTS);
    push(s.demand, sample.demand, SERIES_POINTS);
    push(s.weight, share ? share.weight : null, SERIES_POINTS);
    push(s.vcpu, host ? host.vcpuPercent : null, SERIES_POINTS);
  }

  /** GET /v1/figures: device and QEMU rates against the previous answer. */
  setFigures(list) {
    const prev = this.#prevFigures;
    this.#prevFigures = list;
    const dt = prev ? (list.atMs - prev.atMs) / 1000 : 0;
    for (const f of list.vms) {
      const vm = this.vms.get(f.name);
      if (!vm) continue;
      vm.figures = f;
      const p = prev?.vms.find((x) => x.name === f.name);
      if (!p || dt <= 0 || p.pid !== f.pid) continue;
      const rate = (a, b) => (a === undefined || b === undefined || b < a ? null : (b - a) / dt);
      push(vm.rates.t, list.atMs / 1000, SERIES_POINTS);
      push(vm.rates.msgs, rate(p.device?.messages, f.device?.messages), SERIES_POINTS);
      push(vm.rates.bytes, rate(p.device?.bytes, f.device?.bytes), SERIES_POINTS);
      const cpu = rate(p.process?.cpuSeconds, f.process?.cpuSeconds);
      push(vm.rates.hostCpu, cpu === null ? null : cpu * 100, SERIES_POINTS);
    }
    this.changed({ kind: 'figures' });
  }

  log(name, list, entry) {
    const vm = this.vms.get(name);
    if (!vm) return;
    push(vm[list], { at: new Date(), ...entry }, LOG_LINES);
    this.changed({ kind: list, vm: name });
  }
}
