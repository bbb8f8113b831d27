// The nats-server configuration cluster mode needs, as the README documents it: JetStream on (the names
// bucket), pings often enough that a cut-off host's subscriptions go within seconds, and one nkey user per
// host whose permissions let it publish only under its own subjects (vmgmt.<host>.>), the JetStream API
// and the names bucket, and subscribe only to requests addressed to it and its own reply inbox. The tests
// and the bench run the broker with exactly this. Pure.
import { SUBJECTS } from './cluster-envelope.js';

export interface BrokerHostUser {
  /** The host's cluster.host. */
  host: string;
  /** The public key (U...) of the host's nkey; its seed is in the host's cluster.credentialsFile. */
  publicKey: string;
}

/** What one host's user may do. The JetStream API is open for the bucket's reads, watches and (on first
 * use) its creation, but no host may delete or purge a stream or remove messages from one: a daemon's
 * credentials cannot wipe every host's names at once. */
export function hostPermissions(host: string, bucket: string): { publish: string[]; publishDeny: string[]; subscribe: string[] } {
  return {
    publish: [`vmgmt.${host}.>`, '$JS.API.>', `$KV.${bucket}.>`, '$JS.FC.>', '$JS.ACK.>'],
    publishDeny: ['$JS.API.STREAM.DELETE.>', '$JS.API.STREAM.PURGE.>', '$JS.API.STREAM.MSG.DELETE.>'],
    subscribe: [SUBJECTS.requestsFor(host), `${SUBJECTS.inboxPrefix(host)}.>`],
  };
}

export function brokerConfig(opts: { listen: string; storeDir: string; bucket: string; users: readonly BrokerHostUser[] }): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const user = (u: BrokerHostUser): string => {
    const p = hostPermissions(u.host, opts.bucket);
    return `    { nkey: ${u.publicKey}, permissions: { publish: { allow: ${list(p.publish)}, deny: ${list(p.publishDeny)} }, subscribe: { allow: ${list(p.subscribe)} }, allow_responses: true } }`;
  };
  return [
    `listen: ${opts.listen}`,
    `jetstream { store_dir: ${JSON.stringify(opts.storeDir)} }`,
    '# a host whose link is cut loses its subscriptions after two missed pings',
    'ping_interval: "1s"',
    'ping_max: 2',
    'authorization {',
    '  users = [',
    ...opts.users.map(user),
    '  ]',
    '}',
    '',
  ].join('\n');
}
