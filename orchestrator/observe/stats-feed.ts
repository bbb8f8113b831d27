// Each stats record the hub accepts, published on the event stream as `stats.record` with the VM's share
// and host figures as `vmgmt stats` reports them. Returns the unsubscribe.
import type { StatsHub } from '../../device-backend/services/stats/stats-hub.js';
import type { ApiEventHub } from '../api/event-hub.js';
import type { VmManagerApi } from '../daemon/vm-manager-api.js';

export function feedStatsRecords(hub: StatsHub, manager: Pick<VmManagerApi, 'stats'>, events: ApiEventHub): () => void {
  return hub.onRecord((vm) => {
    let stats;
    try {
      stats = manager.stats(vm, { limit: 1 });
    } catch {
      return; // a VM removed meanwhile
    }
    const sample = stats.samples.at(-1);
    if (sample) events.publish('stats.record', { vm, sample, share: stats.share, host: stats.host });
  });
}
