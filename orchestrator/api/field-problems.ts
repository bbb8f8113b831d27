// Validation errors as the API, the CLI and the daemon's config file report them: one problem per field,
// each with the field's dotted path and why. Pure.
import type { z } from 'zod';

export interface FieldProblem {
  /** Dotted path of the field (`device.ringSlots`), or `(top level)`. */
  path: string;
  message: string;
}

/** Every problem in a zod error, each naming the field and why. */
export function zodProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.map((i) => ({ path: i.path.length ? i.path.join('.') : '(top level)', message: i.message }));
}

/** `a: why; b: why`: the one-line form of a problem list, for messages. */
export function describeProblems(problems: readonly FieldProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
}

/** The problems with their paths under `prefix` (`body`, `query`, `transfers`). */
export function prefixProblems(prefix: string, problems: readonly FieldProblem[]): FieldProblem[] {
  return problems.map((p) => ({ path: p.path === '(top level)' ? prefix : `${prefix}.${p.path}`, message: p.message }));
}
