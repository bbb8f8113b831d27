// Bridge mode's one step outside QEMU: QEMU creates the VM's tap (it goes away when QEMU exits, so nothing
// is left behind), and the daemon puts it on the host bridge with iproute2. No qemu-bridge-helper: it
// needs a setuid helper, /etc/qemu/bridge.conf and QEMU's sandbox allowing spawn.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { QemuError } from '../qemu/qemu-error.js';

/** Refuses a bridge that does not exist in the daemon's network namespace, before QEMU starts. */
export function checkBridge(bridge: string): void {
  if (!existsSync(`/sys/class/net/${bridge}/bridge`)) {
    const what = existsSync(`/sys/class/net/${bridge}`) ? 'is not a bridge' : 'does not exist';
    throw new QemuError('INVALID_SPEC', `network bridge ${bridge} ${what} in the daemon's network namespace: create it (ip link add ${bridge} type bridge) or use network mode user`, {
      field: 'network.bridge',
      value: bridge,
    });
  }
}

/** `ip link set TAP master BRIDGE up`. */
export async function attachTapToBridge(tap: string, bridge: string): Promise<void> {
  const r = await execa('ip', ['link', 'set', 'dev', tap, 'master', bridge, 'up'], { reject: false, timeout: 10_000 });
  if (r.exitCode !== 0) {
    throw new QemuError('INVALID_SPEC', `could not put the VM's tap ${tap} on bridge ${bridge}: ip link said ${JSON.stringify(r.stderr.trim() || r.shortMessage)} (the daemon needs CAP_NET_ADMIN)`, {
      field: 'network.bridge',
      value: bridge,
    });
  }
}
