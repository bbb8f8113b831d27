// A VM's network, from its definition to QEMU's arguments. Pure: no I/O (the bridge attach after QEMU is
// up is in bridge-attach.ts). One virtio-net NIC per VM with a MAC derived from the VM's name, so a VM
// keeps its address (and its DHCP lease) across restarts and daemon restarts.
import { createHash } from 'node:crypto';

/** How one host port reaches a guest port under user-mode networking (QEMU's hostfwd). */
export interface PortForward {
  protocol: 'tcp' | 'udp';
  /** The host address QEMU listens on; 127.0.0.1 unless the definition opens it wider. */
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

/** The definition's `network` section, validated (vm-definition.ts). */
export type NetworkDefinition =
  | { mode: 'none' }
  | { mode: 'user'; forwards: PortForward[]; mac?: string }
  | { mode: 'bridge'; bridge: string; mac?: string }
  | { mode: 'tap'; ifname: string; mac?: string };

/** What QEMU is given: user-mode with forwards, or a tap interface by name (QEMU creates it if missing). */
export type QemuNetwork =
  | { kind: 'user'; mac: string; forwards: PortForward[] }
  | { kind: 'tap'; mac: string; ifname: string };

export const QEMU_NETDEV_ID = 'vmgmtnet';
/** Linux's IFNAMSIZ less the NUL. */
export const IFNAME_MAX_BYTES = 15;
export const IFNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
export const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The VM's stable MAC: QEMU's locally administered prefix 52:54:00 and three bytes of sha256(name).
 * Two VMs collide with probability about n²/2²⁵; a definition can name its own `mac`.
 */
export function stableMac(vmName: string): string {
  const h = createHash('sha256').update(`vmgmt-mac:${vmName}`).digest();
  return ['52', '54', '00', ...[h[0], h[1], h[2]].map((b) => (b as number).toString(16).padStart(2, '0'))].join(':');
}

/** The tap interface QEMU creates for a VM in bridge mode: `vmgmt` + 8 hex digits of the name's hash. */
export function bridgeTapName(vmName: string): string {
  return `vmgmt${createHash('sha256').update(`vmgmt-tap:${vmName}`).digest('hex').slice(0, 8)}`;
}

/** Which MAC a VM uses: the definition's, or the stable one. undefined under mode none. */
export function networkMac(vmName: string, net: NetworkDefinition): string | undefined {
  return net.mode === 'none' ? undefined : (net.mac ?? stableMac(vmName));
}

/** The QEMU side of a definition's network; undefined under mode none (no NIC at all). */
export function qemuNetwork(vmName: string, net: NetworkDefinition): QemuNetwork | undefined {
  const mac = networkMac(vmName, net);
  switch (net.mode) {
    case 'none':
      return undefined;
    case 'user':
      return { kind: 'user', mac: mac!, forwards: net.forwards };
    case 'bridge':
      return { kind: 'tap', mac: mac!, ifname: bridgeTapName(vmName) };
    case 'tap':
      return { kind: 'tap', mac: mac!, ifname: net.ifname };
  }
}

/** `-netdev` and `-device` for the NIC. */
export function qemuNetworkArgs(net: QemuNetwork): string[] {
  let netdev: string;
  if (net.kind === 'user') {
    const forwards = net.forwards.map((f) => `,hostfwd=${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join('');
    netdev = `user,id=${QEMU_NETDEV_ID}${forwards}`;
  } else {
    // script=no: QEMU only opens the tap; bridge mode enslaves it to the bridge afterwards (bridge-attach.ts).
    netdev = `tap,id=${QEMU_NETDEV_ID},ifname=${net.ifname},script=no,downscript=no`;
  }
  return ['-netdev', netdev, '-device', `virtio-net-pci,netdev=${QEMU_NETDEV_ID},mac=${net.mac}`];
}

/** What `vm inspect` shows of the network: the mode, the MAC in use, the forwards or the interface. */
export interface NetworkInfo {
  mode: NetworkDefinition['mode'];
  mac: string | null;
  forwards?: PortForward[];
  bridge?: string;
  ifname?: string;
}

export function networkInfo(vmName: string, net: NetworkDefinition): NetworkInfo {
  const mac = networkMac(vmName, net) ?? null;
  switch (net.mode) {
    case 'none':
      return { mode: 'none', mac };
    case 'user':
      return { mode: 'user', mac, forwards: net.forwards };
    case 'bridge':
      return { mode: 'bridge', mac, bridge: net.bridge, ifname: bridgeTapName(vmName) };
    case 'tap':
      return { mode: 'tap', mac, ifname: net.ifname };
  }
}
