/**
 * The last few minutes of a deployment, one sample per second at most, for
 * the dashboard's charts: a bounded ring, filled without timers (so it never
 * keeps the object awake) by `maybeSample`, which entry points call and which
 * returns at once unless a second has passed. Counters are cumulative; the
 * dashboard turns consecutive samples into rates. A freshly opened
 * dashboard gets the history; ten open dashboards cost ten cheap reads.
 */
export interface MetricsSample {
  /** Wall clock, ms. */
  at: number;
  sessions: number;
  maxSessions: number;
  waiting: number;
  maxWaitingSessions: number;
  oldestWaitMs: number;
  refreshQueue: number;
  refreshQueueLimit: number;
  queryExecutions: number;
  invalidations: number;
  transitions: number;
  commits: number;
  admitted: number;
  refused: number;
  searchMemoryBytes: number;
  searchMemoryBudgetBytes: number;
  compactions: number;
  /** Sessions signed in now, and tokens refused so far (sign-in trouble shows as a climb). */
  signedIn: number;
  tokensRefused: number;
}

export class MetricsRing {
  private readonly samples: MetricsSample[] = [];
  private next = 0;
  private readonly capacity: number;
  private readonly read: (now: number) => MetricsSample;

  /** `read` assembles a sample from counters the deployment already keeps (O(1) each). */
  constructor(read: (now: number) => MetricsSample, capacity = 300) {
    this.read = read;
    this.capacity = capacity;
  }

  /** Takes a sample if the last one is a second old or more. */
  maybeSample(now = Date.now()): void {
    const last = this.samples.length === 0 ? null : this.samples[(this.next - 1 + this.capacity) % this.capacity]!;
    if (last && now - last.at < 1_000) return;
    const sample = this.read(now);
    if (this.samples.length < this.capacity) this.samples.push(sample);
    else this.samples[this.next] = sample;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Oldest first. */
  history(): MetricsSample[] {
    return this.samples.length < this.capacity ? [...this.samples] : [...this.samples.slice(this.next), ...this.samples.slice(0, this.next)];
  }
}
