/**
 * One alarm per Durable Object, shared by periodic work (idle pings, search
 * compaction). Each task runs when the alarm fires and returns when it next
 * wants to run (or null: nothing to do); the alarm is set to the earliest.
 * Nothing here keeps the object awake: between alarms it may hibernate, and
 * tasks recompute what they need from storage, so a wake loses nothing.
 */
export type AlarmTask = () => number | null | Promise<number | null>;

/** The part of Durable Object storage the scheduler uses (a fake in unit tests). */
export interface AlarmStorage {
  getAlarm(): Promise<number | null>;
  setAlarm(scheduledTime: number): Promise<void>;
}

export class AlarmScheduler {
  private readonly storage: AlarmStorage;
  private readonly tasks: Record<string, AlarmTask>;
  /** The alarm time we know is set (lost on wake: then we ask storage). */
  private armedAt: number | null = null;

  constructor(storage: AlarmStorage, tasks: Record<string, AlarmTask>) {
    this.storage = storage;
    this.tasks = tasks;
  }

  /** Makes sure the alarm fires no later than `at`. */
  request(at: number): void {
    if (this.armedAt !== null && this.armedAt <= at) return;
    this.armedAt = at;
    void this.storage.getAlarm().then((existing) => {
      if (existing === null || existing > at) return this.storage.setAlarm(at);
    });
  }

  /** The alarm handler: runs every task (one failing does not stop the others), then re-arms. */
  async run(): Promise<void> {
    this.armedAt = null;
    let next: number | null = null;
    for (const [name, task] of Object.entries(this.tasks)) {
      try {
        const wanted = await task();
        if (wanted !== null && (next === null || wanted < next)) next = wanted;
      } catch (error) {
        // Retrying the alarm would rerun every task; a task owns its own retry policy.
        console.error(`alarm task ${name} failed:`, error);
      }
    }
    if (next !== null) {
      this.armedAt = next;
      await this.storage.setAlarm(next);
    }
  }
}
