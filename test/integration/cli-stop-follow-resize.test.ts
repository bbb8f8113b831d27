// Three of issue 14's CLI leftovers through the real `vmgmt` against a real daemon and real QEMU guests:
// `vm stop` right after `vm start` goes to QMP quit at once (the guest has not enabled the ACPI power
// button yet) and says so, while a booted guest still powers off by the button; `vm logs -f` ends when the
// VM stops or crashes and follows on across an on-failure restart; `vm exec --tty` passes the terminal's
// new size on (the CLI runs on a pseudo-terminal made with python3's pty module, which the test resizes).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Runs the CLI as the session leader of a new pseudo-terminal of 30x90 (pty.fork: it is its controlling
 * terminal), waits for `ready`, resizes the terminal to 50x132 (the kernel sends the CLI SIGWINCH), then
 * sends empty lines until the guest prints the new size (the resize and the typed lines travel apart), and `q`.
 */
const PTY_DRIVER = String.raw`
import fcntl, json, os, pty, select, struct, sys, termios, time
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 90, 0, 0))
    os.execv(argv[0], argv)
out = b''
def pump(until, seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
        if until(out):
            return True
    return False
ok_ready = pump(lambda o: b'ready' in o, 120)
resized_at = len(out)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 50, 132, 0, 0))
ok_size = False
for _ in range(60):
    os.write(fd, b'\n')
    if pump(lambda o: b'50 132' in o[resized_at:], 0.5):
        ok_size = True
        break
os.write(fd, b'q\n')
pump(lambda o: False, 30)
_, status = os.waitpid(pid, 0)
print(json.dumps({'readySeen': ok_ready, 'newSizeSeen': ok_size, 'resizedAt': resized_at, 'exitCode': os.waitstatus_to_exitcode(status), 'output': out.decode('utf-8', 'replace')}))
`;

describe('vm stop after start, vm logs -f to the end, vm exec --tty resizes (issue 14)', () => {
  let d: DaemonFixture;
  const vmgmt = (...args: string[]) => d.cli(...args);

  beforeAll(async () => {
    d = await DaemonFixture.start();
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  const waitForAgent = (name: string): Promise<void> => d.waitForAgent(name, 120_000);

  it('stop right after start goes to quit at once, says the VM was still booting, and leaves no QEMU', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-early', accel: 'tcg' })).status).toBe(201);
    const started = await vmgmt('vm', 'start', 'it-early', '--json');
    expect(started.code, started.stderr).toBe(0);
    const pid = JSON.parse(started.stdout).pid as number;
    expect(alive(pid)).toBe(true);
    // At once: a TCG guest takes about 2 s (unloaded host) to enable its power button.
    const t0 = Date.now();
    const stopped = await vmgmt('vm', 'stop', 'it-early');
    const ms = Date.now() - t0;
    expect(stopped.code, stopped.stderr).toBe(0);
    // The definition's deadline is 30 s; without the check the stop waited all of it.
    expect(ms).toBeLessThan(10_000);
    expect(stopped.stdout).toMatch(/^stopped vm it-early by QEMU quit \(/);
    expect(stopped.stdout).toMatch(/vm it-early was still booting \(its (firmware had not set up ACPI|kernel had not enabled the ACPI power button) yet.*\): stopped it with quit at once/);
    const json = JSON.parse((await vmgmt('vm', 'inspect', 'it-early', '--json')).stdout);
    expect(json).toMatchObject({ state: 'stopped', pid: null, lastExit: { stoppedBy: 'quit', stopNote: expect.stringContaining('still booting') } });
    expect(alive(pid)).toBe(false);
  });

  it('a booted guest still powers off by the button; vm logs -f prints the rest and ends when the VM stops', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-follow', accel: 'tcg' })).status).toBe(201);
    expect((await vmgmt('vm', 'start', 'it-follow')).code).toBe(0);
    await waitForAgent('it-follow');
    const { child, done } = d.cliStreaming(['vm', 'logs', '-f', 'it-follow'], () => {});
    let seen = '';
    child.stdout!.on('data', (b: Buffer) => (seen += b.toString()));
    expect((await d.guest('it-follow', 'echo follow-$((40+2)) > /dev/ttyS0')).exitCode).toBe(0);
    await waitFor('follow-42 in the followed log', () => (seen.includes('follow-42') ? true : undefined), 30_000, 100);

    const stopped = await vmgmt('vm', 'stop', 'it-follow');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/^stopped vm it-follow by the power button/);
    const end = await done;
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toMatch(/^vmgmt: vm it-follow stopped \(exit code 0\); the log ends here\n$/);
    // The follower printed the log to its end: its last bytes are the log's.
    const tail = (await vmgmt('vm', 'logs', 'it-follow', '--tail', '200')).stdout;
    expect(tail.length).toBeGreaterThan(0);
    expect(end.stdout.endsWith(tail)).toBe(true);

    // Following a VM that is down already prints its log and ends at once.
    const again = await vmgmt('vm', 'logs', '-f', 'it-follow');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('follow-42');
    expect(again.stderr).toMatch(/vm it-follow stopped .*the log ends here/);
  });

  it('vm logs -f follows on across an on-failure restart, and ends when the VM crashes for good', async () => {
    const def = { name: 'it-restart', accel: 'tcg', restart: { policy: 'on-failure', maxRestarts: 1, backoffMs: 3000 } };
    expect((await d.api('POST', '/v1/vms', def)).status).toBe(201);
    const first = JSON.parse((await vmgmt('vm', 'start', 'it-restart', '--json')).stdout);
    await d.guest('it-restart', 'true');
    const { child, done } = d.cliStreaming(['vm', 'logs', '-f', 'it-restart'], () => {});
    let seen = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (seen += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    process.kill(first.pid, 'SIGKILL');
    const restarted = await d.waitFor('it-restart', (vm) => vm.state === 'running' && vm.restarts === 1, 120_000);
    expect(restarted.pid).not.toBe(first.pid);
    expect(err).toMatch(/vmgmt: vm it-restart crashed; its on-failure policy restarts it at \S+: following on\n/);
    // The follower is still there, and the restarted guest's output reaches it.
    expect((await d.guest('it-restart', 'echo after-restart-$((6*7)) > /dev/ttyS0')).exitCode).toBe(0);
    await waitFor('after-restart-42 in the followed log', () => (seen.includes('after-restart-42') ? true : undefined), 30_000, 100);
    expect(child.exitCode).toBeNull();

    // Its one restart is used: this crash is the end, and the follower says so.
    process.kill(restarted.pid, 'SIGKILL');
    const end = await done;
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toMatch(/vmgmt: vm it-restart crashed: QEMU ended unexpectedly \(killed by SIGKILL\); the log ends here\n$/);
    expect((await d.api('GET', '/v1/vms/it-restart')).body).toMatchObject({ state: 'crashed', restartGaveUpAt: expect.any(String) });
  });

  it('vm exec --tty passes a resize of its terminal on: stty size in the guest reports the new size', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-tty', accel: 'tcg' })).status).toBe(201);
    expect((await vmgmt('vm', 'start', 'it-tty')).code).toBe(0);
    await waitForAgent('it-tty');
    const cmd = 'stty size; echo ready; while read l; do [ "$l" = q ] && exit 0; stty size; done';
    const argv = [process.execPath, d.cliPath, '--socket', d.socketPath, 'vm', 'exec', 'it-tty', '--tty', '--', 'sh', '-c', cmd];
    const raw = await new Promise<string>((resolve, reject) => {
      const py = spawn('python3', ['-c', PTY_DRIVER, JSON.stringify(argv)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      py.stdout.on('data', (b: Buffer) => (out += b.toString()));
      py.stderr.on('data', (b: Buffer) => (err += b.toString()));
      py.on('error', reject);
      py.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`the pty driver exited with ${code}: ${err}`))));
    });
    const r = JSON.parse(raw) as { readySeen: boolean; newSizeSeen: boolean; resizedAt: number; exitCode: number; output: string };
    const output = r.output.replace(/\r/g, '');
    expect(r.readySeen, output).toBe(true);
    // The size at the start, then the new one after the resize.
    expect(output.slice(0, output.indexOf('ready'))).toContain('30 90\n');
    expect(r.newSizeSeen, output).toBe(true);
    expect(r.exitCode, output).toBe(0);
    // The size went the way this adds: the exec service pushed EXEC_RESIZE (once: one resize was made).
    const services = (await d.api('GET', '/v1/vms/it-tty')).body.device.services as Record<string, Record<string, number>>;
    expect(services['exec']?.['resizes']).toBe(1);
    // The daemon log says nothing of a resize it could not send.
    expect(readFileSync(path.join(d.stateDir, 'vms/it-tty/daemon.log'), 'utf8')).not.toMatch(/could not send EXEC_RESIZE/);
  });
});
