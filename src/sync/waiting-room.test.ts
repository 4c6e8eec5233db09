import { describe, expect, it } from "vitest";
import { WaitingRoom } from "./waiting-room.ts";

describe("WaitingRoom", () => {
  it("admits in arrival order while there is room, each once", () => {
    const room = new WaitingRoom<string>();
    for (const [i, name] of ["a", "b", "c", "d"].entries()) room.add(name, 1_000 + i);
    room.add("b", 5_000); // added twice: still one place, the first
    let slots = 2;
    expect(room.admit(() => slots-- > 0)).toEqual(["a", "b"]);
    expect(room.admit(() => false)).toEqual([]);
    expect(room.admit(() => true)).toEqual(["c", "d"]);
    expect(room.size).toBe(0);
  });

  it("a session that leaves while waiting is not admitted", () => {
    const room = new WaitingRoom<string>();
    room.add("a", 1);
    room.add("b", 2);
    expect(room.remove("a")).toBe(true);
    expect(room.admit(() => true)).toEqual(["b"]);
  });

  it("restores arrival order from wait times after a wake, whatever order the sockets come back in", () => {
    const room = new WaitingRoom<string>();
    room.add("late", 300);
    room.add("early", 100);
    room.add("middle", 200);
    expect(room.oldestSince()).toBe(100);
    expect(room.admit(() => true)).toEqual(["early", "middle", "late"]);
  });

  it("expires those who waited too long, oldest first, and reports the oldest wait (fake clock)", () => {
    const room = new WaitingRoom<string>();
    room.add("a", 0);
    room.add("b", 500);
    room.add("c", 2_000);
    expect(room.oldestWaitMs(2_500)).toBe(2_500);
    expect(room.expire(2_500, 2_000)).toEqual(["a", "b"]);
    expect(room.oldestWaitMs(2_500)).toBe(500);
  });
});
