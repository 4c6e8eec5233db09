/**
 * A token bucket: `rate` tokens per second up to `burst`. Rate and burst are
 * read on every call, so a knob change applies at once.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly rate: () => number;
  private readonly burst: () => number;

  constructor(rate: () => number, burst: () => number, now: number) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst();
    this.updatedAt = now;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.updatedAt) / 1000;
    this.tokens = Math.min(this.burst(), this.tokens + elapsed * this.rate());
    this.updatedAt = now;
  }

  /** Takes `n` tokens if there are that many. */
  take(now: number, n = 1): boolean {
    this.refill(now);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Takes `n` tokens even if that leaves the bucket in debt (for costs known only after the fact). */
  spend(now: number, n: number): void {
    this.refill(now);
    this.tokens -= n;
  }

  /** Returns `n` tokens taken for something that then did not happen (never past the burst). */
  giveBack(n = 1): void {
    this.tokens = Math.min(this.burst(), this.tokens + n);
  }

  /** Milliseconds until `n` tokens will be there (0 if they are now). */
  waitMs(now: number, n = 1): number {
    this.refill(now);
    return this.tokens >= n ? 0 : Math.ceil(((n - this.tokens) / this.rate()) * 1000);
  }
}
