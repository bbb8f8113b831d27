// Starts the metrics and dashboard listener as the daemon's config says (section `metrics`): the token
// file, the metrics registry, the server. Never throws: a listener that cannot start is logged as an error
// with why, and the daemon runs on without it (the control socket is what VMs need).
import type { ApiEventHub } from '../api/event-hub.js';
import { packageVersion } from '../api/api-server.js';
import type { DaemonConfig } from '../daemon/daemon-config.js';
import type { Logger } from '../daemon/logger.js';
import type { ChatApi, VmManagerApi } from '../daemon/vm-manager-api.js';
import { createDaemonMetrics } from './metrics.js';
import { startObserveServer, type ObserveServer } from './observe-server.js';
import { loadOrCreateToken } from './observe-token.js';
import { figuresList, type ObserveSource } from './vm-figures.js';

export interface StartObserveOptions {
  config: DaemonConfig;
  manager: VmManagerApi;
  chat?: ChatApi;
  events: ApiEventHub;
  figures: ObserveSource;
  log: Logger;
}

export async function startObserve(o: StartObserveOptions): Promise<{ server: ObserveServer; why?: undefined } | { server?: undefined; why: string }> {
  const m = o.config.metrics;
  if (!m.enabled) return { why: 'the dashboard and metrics are off (metrics.enabled is false in the daemon config)' };
  const log = o.log.child({ service: 'dashboard' });
  try {
    const token = loadOrCreateToken(m.tokenFile, log);
    const server = await startObserveServer({
      host: m.host,
      port: m.port,
      token,
      tokenFile: m.tokenFile,
      metricsAuth: m.auth,
      metrics: createDaemonMetrics(o.figures, o.events),
      events: o.events,
      manager: o.manager,
      ...(o.chat ? { chat: o.chat } : {}),
      dispatch: { version: packageVersion(), figures: () => figuresList(o.figures) },
      log,
    });
    return { server };
  } catch (err) {
    const why = `the dashboard and metrics listener on ${m.host}:${m.port} did not start: ${(err as Error).message}`;
    log.error(`${why}; the daemon runs without it (set metrics.port in the daemon config, or metrics.enabled false)`, { host: m.host, port: m.port });
    return { why };
  }
}
