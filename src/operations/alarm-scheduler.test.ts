import { describe, expect, it } from "vitest";
import { AlarmScheduler, type AlarmStorage } from "./alarm-scheduler.ts";

/** Storage with one alarm, as a Durable Object has; no clock involved. */
function fakeStorage(): AlarmStorage & { alarm: number | null; sets: number[] } {
  const storage = {
    alarm: null as number | null,
    sets: [] as number[],
    async getAlarm() {
      return storage.alarm;
    },
    async setAlarm(at: number) {
      storage.alarm = at;
      storage.sets.push(at);
    },
  };
  return storage;
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("AlarmScheduler", () => {
  it("keeps the alarm at the earliest request and never moves it later", async () => {
    const storage = fakeStorage();
    const alarms = new AlarmScheduler(storage, {});
    alarms.request(5_000);
    await settle();
    alarms.request(9_000);
    await settle();
    alarms.request(2_000);
    await settle();
    expect(storage.alarm).toBe(2_000);
    expect(storage.sets).toEqual([5_000, 2_000]);
  });

  it("runs every task, re-arms at the earliest time they ask for, and one failing task does not stop the others", async () => {
    const storage = fakeStorage();
    const ran: string[] = [];
    const alarms = new AlarmScheduler(storage, {
      ping: () => (ran.push("ping"), 30_000),
      broken: () => {
        throw new Error("boom");
      },
      compaction: () => (ran.push("compaction"), 12_000),
      idle: () => null,
    });
    const errors = console.error;
    console.error = () => undefined;
    try {
      await alarms.run();
    } finally {
      console.error = errors;
    }
    expect(ran).toEqual(["ping", "compaction"]);
    expect(storage.alarm).toBe(12_000);
  });

  it("sets no alarm when no task wants one", async () => {
    const storage = fakeStorage();
    await new AlarmScheduler(storage, { idle: () => null }).run();
    expect(storage.sets).toEqual([]);
  });
});
