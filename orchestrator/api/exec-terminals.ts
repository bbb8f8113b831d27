// The --tty exec sessions the API has open, by the id each answer's EXEC_ID_HEADER gave its client, so that
// `POST /v1/vms/:name/exec/:id/resize` reaches the session's terminal (the exec service pushes EXEC_RESIZE
// and the guest sets the pty's size, which sends the command SIGWINCH). An entry lives exactly as long as
// its exec request: handleExec opens it and closes it when the command ends. A size asked for before the
// command has its terminal is kept and applied when it has.
import { randomUUID } from 'node:crypto';
import { VmgmtError } from '../daemon/vmgmt-error.js';

export interface ExecTerminal {
  readonly id: string;
  /** The exec service calls this once the command runs on its terminal: resizes go there from then on. */
  attach(resize: (rows: number, cols: number) => void): void;
  close(): void;
}

interface Entry {
  vm: string;
  resize: ((rows: number, cols: number) => void) | undefined;
  pending: { rows: number; cols: number } | undefined;
}

export class ExecTerminals {
  private readonly byId = new Map<string, Entry>();

  get size(): number {
    return this.byId.size;
  }

  open(vm: string): ExecTerminal {
    const id = randomUUID();
    const entry: Entry = { vm, resize: undefined, pending: undefined };
    this.byId.set(id, entry);
    return {
      id,
      attach: (resize) => {
        entry.resize = resize;
        const p = entry.pending;
        entry.pending = undefined;
        if (p) resize(p.rows, p.cols);
      },
      close: () => void this.byId.delete(id),
    };
  }

  /** Throws NOT_FOUND when the VM has no such open --tty session (it ended, or the id is wrong). */
  resize(vm: string, id: string, rows: number, cols: number): void {
    const entry = this.byId.get(id);
    if (!entry || entry.vm !== vm) {
      throw new VmgmtError('NOT_FOUND', `vm ${vm} has no exec --tty session ${id} (it ended, or the id is not one its exec answer gave)`, { name: vm, id });
    }
    if (entry.resize) entry.resize(rows, cols);
    else entry.pending = { rows, cols };
  }
}
