// The KVM self-probe result cache (<cacheDir>/kvm-probe.json, one per host: hostCacheDir in accel-probe.ts).
// Pure: parses and encodes text.
import { z } from 'zod';

export const KVM_PROBE_CACHE_FILE = 'kvm-probe.json';
export const KVM_PROBE_CACHE_VERSION = 2;

/**
 * What decides whether KVM runs guests here, so a probe result stays valid while none of it changes: the
 * host kernel's build (uname -r and -v), the QEMU version, and which /dev/kvm this is (its device number and
 * inode: a reboot or a reloaded module makes a new one). Not the checkout or the guest image, so every
 * daemon and checkout on the host shares one answer.
 */
export const KVM_PROBE_KEY_FIELDS = ['hostKernel', 'qemuVersion', 'kvmDevice'] as const;
export const kvmProbeKeySchema = z.object({
  hostKernel: z.string(),
  qemuVersion: z.string(),
  kvmDevice: z.string(),
});

export const kvmProbeCacheEntrySchema = z.object({
  version: z.literal(KVM_PROBE_CACHE_VERSION),
  key: kvmProbeKeySchema,
  accel: z.enum(['tcg', 'kvm']),
  reason: z.string(),
  probedAt: z.string(),
  probeDurationMs: z.number(),
});

export type KvmProbeKey = z.infer<typeof kvmProbeKeySchema>;
export type KvmProbeCacheEntry = z.infer<typeof kvmProbeCacheEntrySchema>;

export type KvmProbeCacheLookup = { hit: true; entry: KvmProbeCacheEntry } | { hit: false; why: string };

export function lookupKvmProbeCache(text: string | undefined, key: KvmProbeKey): KvmProbeCacheLookup {
  if (text === undefined) return { hit: false, why: 'no cache file' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { hit: false, why: 'cache file is not JSON' };
  }
  const parsed = kvmProbeCacheEntrySchema.safeParse(json);
  if (!parsed.success) return { hit: false, why: 'cache file has an unknown layout' };
  const cached = parsed.data.key;
  for (const field of KVM_PROBE_KEY_FIELDS) {
    if (cached[field] !== key[field]) {
      return { hit: false, why: `${field} changed from ${JSON.stringify(cached[field])} to ${JSON.stringify(key[field])}` };
    }
  }
  return { hit: true, entry: parsed.data };
}

export function encodeKvmProbeCache(entry: KvmProbeCacheEntry): string {
  return `${JSON.stringify(entry, null, 2)}\n`;
}
