// When piped input to `vmgmt vm console` has been answered: the guest's shell printed its prompt again
// (`/ # `, `user@host:~$ `, `> `) at the very end of what it sent. Pure.

/** Terminal escapes (colours, cursor moves) a prompt may carry. */
const ESCAPES = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07/g;

export function consoleAnswered(tail: string): boolean {
  const text = tail.replace(ESCAPES, '').replace(/\r/g, '');
  const lastLine = text.slice(text.lastIndexOf('\n') + 1);
  return /^[^\n]{0,80}[#$>%] $/.test(lastLine);
}
