// `vmgmt --help`. Keep in step with README.md next to this file.

export const HELP_TEXT = `vmgmt: run QEMU VMs with a virtual management device

Usage:
  vmgmt daemon [--config FILE] [--state-dir DIR] [--runtime-dir DIR] [--socket PATH]
               [--cluster nats://HOST:PORT]
                                       run the daemon in the foreground; FILE default
                                       /etc/vmgmt/config.json (missing: all defaults);
                                       flags override the file; SIGHUP reloads it;
                                       --cluster: chat across hosts over NATS (the
                                       config's cluster section gives the credentials)
  vmgmt vm create -f FILE              define a VM from a JSON file (-f - reads stdin)
  vmgmt vm ls                          list VMs
  vmgmt vm inspect NAME                show one VM in detail
  vmgmt vm start NAME                  start a VM
  vmgmt vm stop NAME [--timeout MS]    ACPI power-off; quit after MS, then SIGKILL
  vmgmt vm kill NAME                   SIGKILL the VM's QEMU
  vmgmt vm rm NAME [--force]           remove a VM (--force kills a running one first)
  vmgmt vm logs NAME [--source console|qemu|daemon] [--tail BYTES]
                                       print a VM's log (default: the serial console)
  vmgmt vm console NAME                attach to the serial console; detach with Ctrl-]
  vmgmt cp FILE VM:/PATH               copy a local file into a running VM (VM:/DIR/ keeps the name)
  vmgmt cp VM:/PATH FILE|DIR           copy a file out of a running VM (written atomically)
  vmgmt stats [NAME] [--watch]        guest CPU, steal, declared demand, host vCPU use and the CPU share now (and why)
                                       a local name with a colon is written ./a:b
  vmgmt cluster keygen FILE            a new NATS nkey for cluster mode: the seed to FILE (0600),
                                       the public key printed for the broker's users
  vmgmt chat peers [--watch]           chat names the host may talk to (VM/NAME, @host/NAME);
                                       --watch then prints join/leave lines until Ctrl-C
  vmgmt chat send TARGET MESSAGE|-     send as host (- reads stdin, up to 64 KiB)
  vmgmt chat call TARGET MESSAGE|- [--timeout MS]
                                       call a name and print its reply (default 30000 ms)
  vmgmt chat listen [--as NAME [--exec CMD]]
                                       print messages to host, or hold the host-side name NAME;
                                       --exec answers its calls (stdin: the call, stdout: the reply,
                                       exit status: the reply status)
  vmgmt chat policy check FROM TO      which chat rule decides, and why; FROM/TO: VM/NAME,
                                       @host/NAME, VM, or a registered chat name

Options for every command:
  --socket PATH   the daemon's socket (default $VMGMT_SOCKET, else /run/vmgmt/vmgmt.sock)
  --json          machine output: one JSON document on stdout, errors as
                  {"code", "message", "details"} on stdout too; cp prints NDJSON
                  events instead, the last {"event":"done",...} or {"event":"error",...};
                  chat peers --watch and chat listen print the API's events as JSON lines
  -h, --help      this text

Exit codes:
  0  ok
  1  error from the daemon (other than below), or a local failure
     (cp: no guest agent, the guest refused, a local file cannot be read or written)
  2  usage error
  3  the daemon is not running (no socket, or nothing listening on it)
  4  not found
  5  conflict: the VM already exists, or its state does not allow the request
  6  invalid VM definition (each field problem is printed on its own line)
  7  timeout
  8  refused by chat (policy, queue full, too large, peer gone), a callee answered
     with a non-zero status, or chat policy check says denied
`;
