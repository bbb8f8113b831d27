// The daemon's one connection to the cluster's NATS broker (the official `nats` client): authenticated with
// the host's nkey seed read from a file, replies on an inbox only this host may subscribe to, reconnecting
// for ever. It tells its owner when the link is up (connected, the key-value bucket bound, its watch
// replayed) and when it went down, so the owner can re-announce and fail what was in flight. The link never
// buffers a request while down: request() refuses at once.
import { readFileSync } from 'node:fs';
import { connect, type KV, type KvEntry, type Msg, type NatsConnection, nkeyAuthenticator, type QueuedIterator, type Subscription } from 'nats';
import type { CoreLogger } from '../../../core/core-logger.js';
import { SUBJECTS } from './cluster-envelope.js';

export interface NatsLinkOptions {
  url: string;
  host: string;
  credentialsFile: string;
  bucket: string;
  log: CoreLogger;
  /** How often the client pings the broker; two missed pongs and the link is down. */
  pingIntervalMs: number;
  /** Requests to this host (vmgmt.*.to.<host>): answered with msg.respond. */
  onRequest(msg: Msg): void;
  /** Every entry of the bucket: the history at each (re)start of the watch, then every change. */
  onEntry(entry: KvEntry, replayed: boolean): void;
  /** The link is up: connected, subscribed, the bucket's current values replayed. */
  onUp(): void;
  /** The link went down (the broker restarts, the network is cut, the daemon closes it). */
  onDown(reason: string): void;
}

export type RequestFailure = { kind: 'down' | 'no-responders' | 'timeout' | 'denied' | 'error'; reason: string };

/** Reads the nkey seed: one line SU... (a NATS user seed). Throws with what is wrong and what to do. */
export function readSeed(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the cluster credentials file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const seed = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#') && !l.startsWith('-'));
  if (!seed || !/^SU[A-Z2-7]{50,}$/.test(seed)) throw new Error(`the cluster credentials file ${file} holds no NATS user nkey seed (a line SU...): make one with \`vmgmt cluster keygen\``);
  return new TextEncoder().encode(seed);
}

export class NatsLink {
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #watch: QueuedIterator<KvEntry> | undefined;
  #sub: Subscription | undefined;
  #up = false;
  #closed = false;
  /** A bring-up (bucket bind and watch replay) is under way. */
  #bringing = false;
  /** Connected to the broker now (between a connect or reconnect and a disconnect). */
  #connected = false;
  /** The bucket watch ended on its own (not replaced or closed by us): ensure() starts a new one. */
  #watchEnded = false;
  readonly #seed: Uint8Array;

  constructor(private readonly opts: NatsLinkOptions) {
    this.#seed = readSeed(opts.credentialsFile);
  }

  get up(): boolean {
    return this.#up;
  }

  get kv(): KV | undefined {
    return this.#up ? this.#kv : undefined;
  }

  /** Connects in the background (and keeps reconnecting); the daemon serves its local VMs meanwhile. */
  start(): void {
    void this.#connectLoop();
  }

  async #connectLoop(): Promise<void> {
    while (!this.#closed) {
      try {
        const nc = await connect({
          servers: this.opts.url,
          authenticator: nkeyAuthenticator(this.#seed),
          inboxPrefix: SUBJECTS.inboxPrefix(this.opts.host),
          name: `vmgmt-${this.opts.host}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          pingInterval: this.opts.pingIntervalMs,
          maxPingOut: 2,
          timeout: 2000,
          waitOnFirstConnect: true,
        });
        if (this.#closed) {
          await nc.close();
          return;
        }
        this.#nc = nc;
        this.#connected = true;
        this.opts.log.info('cluster: connected to the broker', { url: this.opts.url, host: this.opts.host });
        void this.#statusLoop(nc);
        void nc.closed().then((err) => {
          this.#down(err ? `the connection closed: ${err.message}` : 'the connection closed');
        });
        this.#sub = nc.subscribe(SUBJECTS.requestsFor(this.opts.host), { callback: (err, msg) => (err ? this.opts.log.warn('cluster: request subscription error', { error: err.message }) : this.opts.onRequest(msg)) });
        await this.#bringUp(nc);
        await nc.closed();
        if (this.#closed) return;
        this.opts.log.warn('cluster: the broker connection closed; connecting again', { url: this.opts.url });
      } catch (err) {
        if (this.#closed) return;
        this.opts.log.error('cluster: cannot connect to the broker; retrying in 2 s (check cluster.url, the credentials file and the broker\'s users)', { url: this.opts.url, error: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  async #statusLoop(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.#closed) return;
      if (s.type === 'disconnect') {
        this.#connected = false;
        this.#down(`disconnected from ${String(s.data)}`);
      } else if (s.type === 'reconnect') {
        this.#connected = true;
        this.opts.log.info('cluster: reconnected to the broker', { server: String(s.data) });
        void this.#bringUp(nc).catch((err: unknown) => this.opts.log.error('cluster: re-announcing after a reconnect failed; next heartbeat retries', { error: (err as Error).message }));
      } else if (s.type === 'error') this.opts.log.warn('cluster: broker reports an error', { error: String(s.data) });
    }
  }

  #down(reason: string): void {
    if (this.#nc?.isClosed() !== false) this.#connected = false;
    const wasUp = this.#up;
    this.#up = false;
    this.#watch?.stop();
    this.#watch = undefined;
    if (wasUp) {
      this.opts.log.warn('cluster: link down; names on other hosts are unreachable until it is back', { reason });
      this.opts.onDown(reason);
    }
  }

  /** Binds the bucket (creating it) and replays it through a new watch; then the link is up. */
  async #bringUp(nc: NatsConnection): Promise<void> {
    if (this.#bringing) return;
    this.#bringing = true;
    try {
      const kv = await nc.jetstream().views.kv(this.opts.bucket, { history: 1 });
      this.#watch?.stop();
      this.#watch = undefined;
      this.#watchEnded = false;
      let replayed = true;
      const w = await kv.watch({ key: '>', initializedFn: () => (replayed = false) });
      this.#watch = w;
      const initialized = new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (!replayed || this.#watch !== w) {
            clearInterval(check);
            resolve();
          }
        }, 5);
      });
      void (async () => {
        try {
          for await (const e of w) this.opts.onEntry(e, replayed);
        } catch (err) {
          this.opts.log.warn('cluster: the bucket watch failed', { error: (err as Error).message });
        }
        if (this.#watch === w && !this.#closed) {
          this.opts.log.warn('cluster: the bucket watch ended; the next heartbeat starts a new one');
          this.#watchEnded = true;
          replayed = false;
        }
      })();
      await initialized;
      if (nc.isClosed() || this.#closed) return;
      this.#kv = kv;
      this.#up = true;
      this.opts.onUp();
    } finally {
      this.#bringing = false;
    }
  }

  /**
   * Called at every heartbeat: brings the link up again where a bring-up failed (JetStream not ready yet
   * after a broker restart) or the watch ended or went stale (`staleWatch`: this host's own lease renewals
   * stopped coming back through it), so the view of the cluster never freezes while connected.
   */
  ensure(staleWatch: boolean): void {
    const nc = this.#nc;
    if (this.#closed || !nc || nc.isClosed() || !this.#connected || this.#bringing) return;
    if (this.#up && !this.#watchEnded && !staleWatch) return;
    this.opts.log.info('cluster: binding the bucket and its watch again', { up: this.#up, watchEnded: this.#watchEnded, staleWatch });
    void this.#bringUp(nc).catch((err: unknown) => this.opts.log.warn('cluster: bring-up failed; retrying at the next heartbeat', { error: (err as Error).message }));
  }

  /** A request to another host; refuses at once while the link is down (nothing is queued in the client). */
  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<{ ok: true; data: Uint8Array } | { ok: false; failure: RequestFailure }> {
    const nc = this.#nc;
    if (!this.#up || !nc || nc.isClosed()) return { ok: false, failure: { kind: 'down', reason: 'this host is not connected to the cluster broker' } };
    try {
      const m = await nc.request(subject, data, { timeout: timeoutMs });
      return { ok: true, data: m.data };
    } catch (err) {
      const e = err as { code?: string; message: string };
      if (e.code === '503') return { ok: false, failure: { kind: 'no-responders', reason: 'the host is not connected to the broker (no responders)' } };
      if (e.code === 'TIMEOUT') return { ok: false, failure: { kind: 'timeout', reason: `no answer within ${timeoutMs} ms` } };
      if (e.code === 'PERMISSIONS_VIOLATION') return { ok: false, failure: { kind: 'denied', reason: e.message } };
      return { ok: false, failure: { kind: this.#up ? 'error' : 'down', reason: e.message } };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#up = false;
    this.#watch?.stop();
    this.#sub?.unsubscribe();
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
  }
}
