/** An error that carries the context needed to act on it (batchId, jobName, ...) and its cause. */
export class ChainError extends Error {
  constructor(message: string, readonly context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChainError';
  }
}

/** Another writer got there first (a failed precondition); the HTTP answer is 409. */
export class ConflictError extends ChainError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(message, context);
    this.name = 'ConflictError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The request itself is wrong (a bad replay body, say); the HTTP answer is 400. */
export class BadRequestError extends ChainError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(message, context);
    this.name = 'BadRequestError';
  }
}
