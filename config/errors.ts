// Errors every front end understands. A front end maps `code` to its own form (HTTP status,
// MCP tool error, CLI exit code, Slack ephemeral message); the message is written for the
// person (or AI client) who has to act on it, and never contains a secret.

export const ERROR_CODES = {
  unknown_tool: { http: 404, exit: 64 },
  invalid_input: { http: 400, exit: 64 },
  bad_target: { http: 400, exit: 64 },
  forbidden: { http: 403, exit: 77 },
  unauthenticated: { http: 401, exit: 77 },
  not_found: { http: 404, exit: 66 },
  conflict: { http: 409, exit: 75 },
  rate_limited: { http: 429, exit: 75 },
  unavailable: { http: 503, exit: 69 },
  read_only: { http: 403, exit: 77 },
  internal: { http: 500, exit: 70 },
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export class CastellanError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Field path for input problems ("lines", "targets"). */
    readonly field?: string | undefined,
    /** rate_limited: seconds until trying again can succeed (HTTP Retry-After). */
    readonly retryAfterS?: number | undefined,
  ) {
    super(message);
    this.name = 'CastellanError';
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
