/**
 * Classify rate limit, per client. The interface is the Workers rate-limiting
 * binding's (`limit({ key })`), so a deployment can bind Cloudflare's shared
 * limiter (CLASSIFY_RATE_LIMITER); otherwise a token bucket in this isolate
 * (or Node process) applies PROTOATLAS_RATE_LIMIT_PER_MINUTE.
 */

export interface RateLimiter {
  /** `retryAfterSeconds`: when the next request would pass (the Workers binding does not say). */
  limit(opts: { key: string }): Promise<{ success: boolean; retryAfterSeconds?: number }>;
}

/** Retry-After when the limiter does not say: the Workers binding's longest period. */
export const DEFAULT_RETRY_AFTER_SECONDS = 60;

/** Token bucket per key: `perMinute` burst, refilled continuously. Keys idle past a full refill are dropped. */
export function memoryRateLimiter(perMinute: number, now: () => number = Date.now, maxKeys = 10_000): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const rate = perMinute / 60_000;
  return {
    async limit({ key }) {
      const t = now();
      let b = buckets.get(key);
      if (b) {
        b.tokens = Math.min(perMinute, b.tokens + (t - b.at) * rate);
        b.at = t;
        // Re-insert so Map order stays least-recently-used first.
        buckets.delete(key);
      } else {
        b = { tokens: perMinute, at: t };
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
      }
      buckets.set(key, b);
      if (b.tokens < 1) {
        // When the bucket holds a whole token again.
        return { success: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000)) };
      }
      b.tokens -= 1;
      return { success: true };
    },
  };
}
