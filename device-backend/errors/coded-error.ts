// The one shape of every error in vmgmt (after zod's issues and execa's errors): a closed set of codes per
// module, the offending values, and the cause. Each module declares its codes and details and names its
// subclass; nothing else differs between them.
export class CodedError<Code extends string, Details extends object = Record<string, unknown>> extends Error {
  readonly code: Code;
  readonly details: Details;

  constructor(code: Code, message: string, details?: Details, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = details ?? ({} as Details);
  }
}
