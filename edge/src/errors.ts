/**
 * API errors: one JSON shape, `{ error: { code, message, requestId } }`, and
 * stable codes that clients can switch on. Anything else thrown is a fault
 * (500 `internal_error`), logged with the request id.
 */

export const ERROR_CODES = {
  bad_query: 400,
  bad_multipart: 400,
  missing_image_field: 400,
  not_found: 404,
  body_missing: 411,
  body_too_large: 413,
  unsupported_media_type: 415,
  undecodable_image: 422,
  image_too_large: 422,
  image_too_small: 422,
  rate_limited: 429,
  internal_error: 500,
  model_unavailable: 503,
  over_time_budget: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
export type ErrorStatus = (typeof ERROR_CODES)[ErrorCode];

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: ErrorStatus;
  readonly headers: Record<string, string>;
  constructor(code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = ERROR_CODES[code];
    this.headers = headers;
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId?: string };
}

export function errorBody(code: ErrorCode, message: string, requestId?: string): ErrorBody {
  return { error: requestId ? { code, message, requestId } : { code, message } };
}

/** A JSON error response (used where no Hono context exists, e.g. static fallbacks). */
export function errorResponse(err: ApiError, requestId?: string): Response {
  return new Response(JSON.stringify(errorBody(err.code, err.message, requestId)), {
    status: err.status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...err.headers },
  });
}
