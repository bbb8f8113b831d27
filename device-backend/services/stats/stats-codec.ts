// Stats-mode payloads: the decoder of the guest's STATS_RECORD (a copy of the ring slot) returns a result
// that says why a record is malformed; encoders of what the core pushes (STATS_CONFIG, STATS_SHARE).
// Pure: bytes in, values out.
import { STATS_CONFIG_MSG, STATS_LIMITS, STATS_RECORD, STATS_SHARE_MSG, STATUS } from '../../layout/wire-layout.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; status: number; reason: string };

const fail = (s: { code: number }, reason: string): { ok: false; status: number; reason: string } => ({ ok: false, status: s.code, reason });
const utf8 = new TextDecoder('utf-8', { fatal: true });
const enc = new TextEncoder();

/** CPU time from the guest's /proc/stat "cpu" line, USER_HZ ticks. */
export interface GuestCpuTicks {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}
export const CPU_TICK_FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;

/** PSI avg10 in hundredths of a percent; null where the guest kernel has no such file. */
export interface GuestPressure {
  cpuSome: number | null;
  memSome: number | null;
  memFull: number | null;
  ioSome: number | null;
  ioFull: number | null;
}

/** A version 1 record (what this core reads of a record of any later version). */
export interface StatsRecord {
  version: number;
  sizeBytes: number;
  seq: number;
  intervalMs: number;
  uptimeMs: number;
  cpu: GuestCpuTicks;
  memTotalKiB: number;
  memAvailableKiB: number;
  load: [number, number, number];
  runnable: number;
  cpus: number;
  psi: GuestPressure;
  /** 0..100, or null: none declared. */
  demand: number | null;
  /** Milliseconds the declared demand still holds; null: until changed. */
  demandLeftMs: number | null;
  reason: string;
}

const u64 = (dv: DataView, at: number): number => Number(dv.getBigUint64(at, true));

/**
 * Checks in a fixed order: version, minimum size, size field against the message length, then the fields
 * (reserved zero, ranges). Counters against the VM's previous record are the validator's (stats-validate.ts).
 */
export function decodeStatsRecord(p: Uint8Array): Decoded<StatsRecord> {
  const o = STATS_RECORD.offsets;
  if (p.byteLength < 4) return fail(STATUS.STATS_BAD_VERSION, `${p.byteLength} payload bytes: too short for a record's version and size`);
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const version = dv.getUint16(o.version, true);
  const size = dv.getUint16(o.size, true);
  if (version < STATS_LIMITS.RECORD_VERSION) return fail(STATUS.STATS_BAD_VERSION, `record version ${version}: versions start at ${STATS_LIMITS.RECORD_VERSION}`);
  if (size < STATS_RECORD.sizeBytes) return fail(STATUS.STATS_BAD_VERSION, `record size ${size}: version 1 has ${STATS_RECORD.sizeBytes} bytes`);
  if (size !== p.byteLength) return fail(STATUS.STATS_BAD_VERSION, `record size field ${size} differs from the message length ${p.byteLength}`);
  if (dv.getUint32(o.flags, true) !== 0) return fail(STATUS.STATS_OUT_OF_RANGE, `flags 0x${dv.getUint32(o.flags, true).toString(16)} must be zero`);
  if (dv.getUint8(o.reserved) !== 0 || dv.getUint32(o.reserved2, true) !== 0) return fail(STATUS.STATS_OUT_OF_RANGE, 'reserved fields must be zero');
  const intervalMs = dv.getUint32(o.interval_ms, true);
  if (intervalMs < STATS_LIMITS.MIN_INTERVAL_MS || intervalMs > STATS_LIMITS.MAX_INTERVAL_MS) {
    return fail(STATUS.STATS_OUT_OF_RANGE, `interval_ms ${intervalMs} outside ${STATS_LIMITS.MIN_INTERVAL_MS}..${STATS_LIMITS.MAX_INTERVAL_MS}`);
  }
  const cpu = {} as GuestCpuTicks;
  for (const f of CPU_TICK_FIELDS) {
    const v = u64(dv, o[`cpu_${f}`]);
    if (!Number.isSafeInteger(v)) return fail(STATUS.STATS_OUT_OF_RANGE, `cpu_${f} ${v} is beyond 2^53 ticks`);
    cpu[f] = v;
  }
  const uptimeMs = u64(dv, o.uptime_ms);
  const memTotalKiB = u64(dv, o.mem_total_kib);
  const memAvailableKiB = u64(dv, o.mem_available_kib);
  if (!Number.isSafeInteger(uptimeMs) || !Number.isSafeInteger(memTotalKiB)) return fail(STATUS.STATS_OUT_OF_RANGE, 'uptime_ms or mem_total_kib beyond 2^53');
  if (memAvailableKiB > memTotalKiB) return fail(STATUS.STATS_OUT_OF_RANGE, `mem_available_kib ${memAvailableKiB} above mem_total_kib ${memTotalKiB}`);
  const cpus = dv.getUint32(o.cpus, true);
  if (cpus < 1 || cpus > 1024) return fail(STATUS.STATS_OUT_OF_RANGE, `cpus ${cpus} outside 1..1024`);
  const load: [number, number, number] = [dv.getUint32(o.load1_milli, true), dv.getUint32(o.load5_milli, true), dv.getUint32(o.load15_milli, true)];
  if (load.some((l) => l > 1_000_000_000)) return fail(STATUS.STATS_OUT_OF_RANGE, `load averages ${load.join(' ')} (x1000) above 1000000`);
  const present = dv.getUint32(o.psi_present, true);
  if (present & ~0x7) return fail(STATUS.STATS_OUT_OF_RANGE, `psi_present 0x${present.toString(16)} has unknown bits`);
  const psiRaw = [o.psi_cpu_some, o.psi_mem_some, o.psi_mem_full, o.psi_io_some, o.psi_io_full].map((at) => dv.getUint32(at, true));
  if (psiRaw.some((v) => v > 10_000)) return fail(STATUS.STATS_OUT_OF_RANGE, `a PSI figure of ${Math.max(...psiRaw)} is above 10000 (100.00 %)`);
  const has = (bit: number, v: number): number | null => (present & bit ? v : null);
  if (psiRaw.some((v, i) => v !== 0 && !(present & [1, 2, 2, 4, 4][i]!))) return fail(STATUS.STATS_OUT_OF_RANGE, 'a PSI figure is set but psi_present says the kernel has none');
  const demandRaw = dv.getUint8(o.demand);
  if (demandRaw > 100 && demandRaw !== STATS_LIMITS.DEMAND_NONE) return fail(STATUS.STATS_OUT_OF_RANGE, `demand ${demandRaw} outside 0..100 (255: none)`);
  const reasonLen = dv.getUint16(o.reason_len, true);
  if (reasonLen > STATS_LIMITS.MAX_REASON_BYTES) return fail(STATUS.STATS_OUT_OF_RANGE, `reason_len ${reasonLen} above ${STATS_LIMITS.MAX_REASON_BYTES}`);
  const reasonBytes = p.subarray(o.reason, o.reason + STATS_LIMITS.MAX_REASON_BYTES);
  if (reasonBytes.subarray(reasonLen).some((b) => b !== 0)) return fail(STATUS.STATS_OUT_OF_RANGE, 'reason bytes past reason_len must be zero');
  let reason: string;
  try {
    reason = utf8.decode(reasonBytes.subarray(0, reasonLen));
  } catch {
    return fail(STATUS.STATS_OUT_OF_RANGE, 'reason is not UTF-8');
  }
  if (/[\u0000-\u001f\u007f]/.test(reason)) return fail(STATUS.STATS_OUT_OF_RANGE, 'reason has a control character');
  const demandLeft = dv.getUint32(o.demand_left_ms, true);
  const demand = demandRaw === STATS_LIMITS.DEMAND_NONE ? null : demandRaw;
  return {
    ok: true,
    value: {
      version,
      sizeBytes: size,
      seq: dv.getUint32(o.seq, true),
      intervalMs,
      uptimeMs,
      cpu,
      memTotalKiB,
      memAvailableKiB,
      load: [load[0] / 1000, load[1] / 1000, load[2] / 1000],
      runnable: dv.getUint32(o.runnable, true),
      cpus,
      psi: { cpuSome: has(1, psiRaw[0]!), memSome: has(2, psiRaw[1]!), memFull: has(2, psiRaw[2]!), ioSome: has(4, psiRaw[3]!), ioFull: has(4, psiRaw[4]!) },
      demand,
      demandLeftMs: demand === null || demandLeft === 0xffffffff ? null : demandLeft,
      reason: demand === null ? '' : reason,
    },
  };
}

/** The record as a version 1 driver writes it (tests, the fuzz harness). */
export function encodeStatsRecord(r: StatsRecord): Uint8Array {
  const o = STATS_RECORD.offsets;
  const p = new Uint8Array(Math.max(r.sizeBytes, STATS_RECORD.sizeBytes));
  const dv = new DataView(p.buffer);
  dv.setUint16(o.version, r.version, true);
  dv.setUint16(o.size, p.byteLength, true);
  dv.setUint32(o.seq, r.seq, true);
  dv.setUint32(o.interval_ms, r.intervalMs, true);
  dv.setBigUint64(o.uptime_ms, BigInt(r.uptimeMs), true);
  for (const f of CPU_TICK_FIELDS) dv.setBigUint64(o[`cpu_${f}`], BigInt(r.cpu[f]), true);
  dv.setBigUint64(o.mem_total_kib, BigInt(r.memTotalKiB), true);
  dv.setBigUint64(o.mem_available_kib, BigInt(r.memAvailableKiB), true);
  dv.setUint32(o.load1_milli, Math.round(r.load[0] * 1000), true);
  dv.setUint32(o.load5_milli, Math.round(r.load[1] * 1000), true);
  dv.setUint32(o.load15_milli, Math.round(r.load[2] * 1000), true);
  dv.setUint32(o.runnable, r.runnable, true);
  dv.setUint32(o.cpus, r.cpus, true);
  const psi = [r.psi.cpuSome, r.psi.memSome, r.psi.memFull, r.psi.ioSome, r.psi.ioFull];
  dv.setUint32(o.psi_present, (psi[0] !== null ? 1 : 0) | (psi[1] !== null ? 2 : 0) | (psi[3] !== null ? 4 : 0), true);
  [o.psi_cpu_some, o.psi_mem_some, o.psi_mem_full, o.psi_io_some, o.psi_io_full].forEach((at, i) => dv.setUint32(at, psi[i] ?? 0, true));
  dv.setUint8(o.demand, r.demand ?? STATS_LIMITS.DEMAND_NONE);
  const reason = enc.encode(r.reason).subarray(0, STATS_LIMITS.MAX_REASON_BYTES);
  dv.setUint16(o.reason_len, reason.byteLength, true);
  dv.setUint32(o.demand_left_ms, r.demandLeftMs ?? 0xffffffff, true);
  p.set(reason, o.reason);
  return p;
}

export function encodeStatsConfig(intervalMs: number): Uint8Array {
  const p = new Uint8Array(STATS_CONFIG_MSG.sizeBytes);
  new DataView(p.buffer).setUint32(STATS_CONFIG_MSG.offsets.interval_ms, intervalMs, true);
  return p;
}

/** What the host gives a VM now (pushed as STATS_SHARE, shown by the API). */
export interface ShareNotice {
  weight: number;
  baseWeight: number;
  capPercent: number | null;
  boostLeftMs: number;
  flags: number;
  demand: number | null;
  reason: string;
}

export function encodeStatsShare(s: ShareNotice): Uint8Array {
  const o = STATS_SHARE_MSG.offsets;
  const p = new Uint8Array(STATS_SHARE_MSG.sizeBytes);
  const dv = new DataView(p.buffer);
  dv.setUint32(o.weight, s.weight, true);
  dv.setUint32(o.base_weight, s.baseWeight, true);
  dv.setUint32(o.cap_percent, s.capPercent ?? 0, true);
  dv.setUint32(o.boost_left_ms, Math.max(0, Math.min(0xffffffff, Math.round(s.boostLeftMs))), true);
  dv.setUint32(o.flags, s.flags, true);
  dv.setUint8(o.demand, s.demand ?? STATS_LIMITS.DEMAND_NONE);
  let reason = enc.encode(s.reason);
  if (reason.byteLength > STATS_LIMITS.MAX_SHARE_REASON_BYTES) {
    // Cut at a character boundary.
    let n = STATS_LIMITS.MAX_SHARE_REASON_BYTES;
    while (n > 0 && (reason[n]! & 0xc0) === 0x80) n--;
    reason = reason.subarray(0, n);
  }
  dv.setUint32(o.reason_len, reason.byteLength, true);
  p.set(reason, o.reason);
  return p;
}
