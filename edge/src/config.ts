/**
 * Runtime settings, read from the environment (Workers vars or process.env),
 * each with a default that suits the public API.
 */

export interface EdgeConfig {
  /** Largest accepted request body. */
  maxBodyBytes: number;
  /** Largest accepted image, checked from its header before decoding. */
  maxPixels: number;
  /** Smallest accepted side, in pixels. */
  minSide: number;
  /** Origins allowed by CORS ('*' = any). */
  corsOrigins: string[];
  /** Classify requests per client per minute; 0 turns the limiter off. */
  rateLimitPerMinute: number;
  /** Cache-Control max-age of bundle files (they are immutable per model version). */
  assetMaxAge: number;
  /** Milliseconds a classification may take before it answers 503 over_time_budget (below the platform's CPU limit). */
  requestBudgetMs: number;
}

export const DEFAULT_CONFIG: EdgeConfig = {
  maxBodyBytes: 10 * 1024 * 1024,
  maxPixels: 40_000_000,
  minSide: 16,
  corsOrigins: ['*'],
  rateLimitPerMinute: 0,
  assetMaxAge: 86_400,
  // Under Workers' default CPU limit per request (30 s), with room for the step that is running.
  requestBudgetMs: 10_000,
};

function num(v: unknown, name: string, fallback: number, min: number): number {
  if (v === undefined || v === null || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** Reads PROTOATLAS_* settings; a malformed one fails loudly at start-up rather than per request. */
export function readConfig(env: Record<string, unknown>): EdgeConfig {
  const origins =
    typeof env.PROTOATLAS_CORS_ORIGINS === 'string' && env.PROTOATLAS_CORS_ORIGINS.trim() !== ''
      ? env.PROTOATLAS_CORS_ORIGINS
      : '*';
  return {
    maxBodyBytes: num(env.PROTOATLAS_MAX_BODY_BYTES, 'PROTOATLAS_MAX_BODY_BYTES', DEFAULT_CONFIG.maxBodyBytes, 1),
    maxPixels: num(env.PROTOATLAS_MAX_PIXELS, 'PROTOATLAS_MAX_PIXELS', DEFAULT_CONFIG.maxPixels, 1),
    minSide: num(env.PROTOATLAS_MIN_SIDE, 'PROTOATLAS_MIN_SIDE', DEFAULT_CONFIG.minSide, 1),
    corsOrigins: origins
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    rateLimitPerMinute: num(
      env.PROTOATLAS_RATE_LIMIT_PER_MINUTE,
      'PROTOATLAS_RATE_LIMIT_PER_MINUTE',
      DEFAULT_CONFIG.rateLimitPerMinute,
      0,
    ),
    assetMaxAge: num(env.PROTOATLAS_ASSET_MAX_AGE, 'PROTOATLAS_ASSET_MAX_AGE', DEFAULT_CONFIG.assetMaxAge, 0),
    requestBudgetMs: num(
      env.PROTOATLAS_REQUEST_BUDGET_MS,
      'PROTOATLAS_REQUEST_BUDGET_MS',
      DEFAULT_CONFIG.requestBudgetMs,
      1,
    ),
  };
}
