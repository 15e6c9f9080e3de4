/**
 * A per-request time budget: a classification that has used its budget stops
 * at the next step with 503 `over_time_budget` (and Retry-After), rather than
 * running on into the platform's CPU limit, where Workers would end it with an
 * opaque error. Waits (the model queue, a cold start) are cut short too.
 *
 * Steps themselves (decode, inference) are not interruptible, so the budget is
 * checked between them; set it below the platform limit by the longest step.
 * In workerd the clock only moves across I/O, so there the budget bounds the
 * waits and the upload rather than pure computation.
 */
import { ApiError } from './errors.ts';

export class RequestBudget {
  readonly ms: number;
  private readonly now: () => number;
  private readonly deadline: number;

  constructor(ms: number, now: () => number = () => performance.now()) {
    this.ms = ms;
    this.now = now;
    this.deadline = now() + ms;
  }

  remaining(): number {
    return this.deadline - this.now();
  }

  /** Throw if the budget is spent; `step` names the step that would run next. */
  check(step: string): void {
    if (this.remaining() <= 0) throw this.exceeded(step);
  }

  /** `p`, or 503 when the budget runs out first (`p` still settles; its result is dropped). */
  async within<T>(p: Promise<T>, waitingFor: string): Promise<T> {
    // Whatever happens here, a late failure of `p` is not an unhandled rejection.
    p.catch(() => {});
    this.check(waitingFor);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.exceeded(waitingFor)), Math.max(0, this.remaining()));
    });
    try {
      return await Promise.race([p, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  private exceeded(step: string): ApiError {
    const message =
      `the request ran out of its ${this.ms} ms time budget at step "${step}" (PROTOATLAS_REQUEST_BUDGET_MS); ` +
      'the service is busy or the image is large: try again, or send a smaller image';
    return new ApiError('over_time_budget', message, { 'retry-after': '1' });
  }
}
