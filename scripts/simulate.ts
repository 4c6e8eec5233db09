/**
 * `npm run simulate [-- --clients N[,N...]]`: a discrete-event simulation of
 * a reconnect wave of 10,000 to 1,000,000 clients, comparing how a server
 * meets it (accept-then-drop as in the outage, refuse with 429, the waiting
 * room) and how clients retry (the reconnect logic of `convex@1.24.6` and of
 * the current `convex`, read from their `web_socket_manager`, and the
 * postmortem's pre-fix client that reset its backoff the moment a socket
 * opened). Admission and the waiting room are the server's own code
 * (`src/sync/admission.ts`, `src/sync/waiting-room.ts`) on the
 * simulation's clock. Prints one table per size; the assumptions are printed
 * with it.
 */
import { Admission } from "../src/sync/admission.ts";
import { WaitingRoom } from "../src/sync/waiting-room.ts";
import { seeded, table } from "./bench/harness.ts";

/** The capacity model, calibrated from this repo's measurements (docs/BENCHMARKS.md). */
const ASSUMPTIONS = {
  /** New sessions one deployment object syncs per second (`sessionAdmitRate` default; the wave benchmark admitted 10,000 at this rate). */
  admitRatePerObject: 500,
  admitBurstPerObject: 1_000,
  /** Objects (sync shards) serving the deployment: 1 per 20,000 clients (a Durable Object takes at most 32,768 sockets). */
  clientsPerObject: 20_000,
  /** Accept-then-drop: sessions an object can hold waiting for their first sync before it drops the rest (the outage's hard-coded queue). */
  dropQueuePerObject: 10_000,
  /** Accept-then-drop: how long an accepted session lives before the overflowing queue drops it. */
  dropAfterMs: 1_000,
  /** Clients notice the outage and first reconnect spread over this window. */
  waveSpreadMs: 1_000,
  /** Give up simulating after this (reported as "not within"). */
  horizonMs: 30 * 60_000,
} as const;

type Server = "accept-then-drop" | "refuse-429" | "waiting-room";
type ClientKind = "reset-on-open (postmortem)" | "convex@1.24.6" | "convex (current)";

/** How a client kind picks its next delay after a failed attempt (`retries` counts failures since it last reset). */
const BACKOFF: Record<ClientKind, { initialMs: (closeReason: "overload" | "unknown") => number; resetOnOpen: boolean }> = {
  // Pre-fix: 100 ms base whatever the reason, and the backoff reset as soon as a socket opened.
  "reset-on-open (postmortem)": { initialMs: () => 100, resetOnOpen: true },
  // 1.24.6: 100 ms base whatever the reason; reset only once synced past the reconnect.
  "convex@1.24.6": { initialMs: () => 100, resetOnOpen: false },
  // Current: 1 s for an unknown close (a refused upgrade), 3 s for overload reasons; reset once synced.
  "convex (current)": { initialMs: (reason) => (reason === "overload" ? 3_000 : 1_000), resetOnOpen: false },
};
const MAX_BACKOFF_MS = 16_000;

/** A binary heap of (time, client) events. */
class Events {
  private readonly times: number[] = [];
  private readonly ids: number[] = [];
  get size(): number {
    return this.times.length;
  }
  push(time: number, id: number): void {
    const t = this.times;
    const d = this.ids;
    let i = t.length;
    t.push(time);
    d.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (t[parent]! <= time) break;
      t[i] = t[parent]!;
      d[i] = d[parent]!;
      i = parent;
    }
    t[i] = time;
    d[i] = id;
  }
  pop(): [number, number] {
    const t = this.times;
    const d = this.ids;
    const top: [number, number] = [t[0]!, d[0]!];
    const lastT = t.pop()!;
    const lastD = d.pop()!;
    if (t.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= t.length) break;
        const child = left + 1 < t.length && t[left + 1]! < t[left]! ? left + 1 : left;
        if (t[child]! >= lastT) break;
        t[i] = t[child]!;
        d[i] = d[child]!;
        i = child;
      }
      t[i] = lastT;
      d[i] = lastD;
    }
    return top;
  }
}

interface Result {
  equilibriumMs: number | null;
  attempts: number;
  peakAttemptsPerSecond: number;
  peakAcceptedPerSecond: number;
}

function simulate(clients: number, server: Server, kind: ClientKind, seed = 1): Result {
  const random = seeded(seed);
  const objects = Math.max(1, Math.ceil(clients / ASSUMPTIONS.clientsPerObject));
  const rate = ASSUMPTIONS.admitRatePerObject * objects;
  const knobs = { sessionAdmitRate: rate, sessionAdmitBurst: ASSUMPTIONS.admitBurstPerObject * objects, maxSessions: clients };
  let now = 0;
  const admission = new Admission(() => knobs, 0, random);
  const room = new WaitingRoom<number>();
  const retries = new Uint8Array(clients);
  const events = new Events();
  for (let id = 0; id < clients; id++) events.push(random() * ASSUMPTIONS.waveSpreadMs, id);
  let synced = 0;
  let attempts = 0;
  const attemptsPerSecond = new Map<number, number>();
  const acceptedPerSecond = new Map<number, number>();
  const count = (map: Map<number, number>) => map.set(Math.floor(now / 1_000), (map.get(Math.floor(now / 1_000)) ?? 0) + 1);
  // Accept-then-drop: sessions accepted and not yet synced, in order, with the time each is dropped.
  const pending: number[] = [];
  let pendingHead = 0;
  let lastPump = 0;
  /** The server's next turn (every 100 ms while sessions wait for it). */
  let tickAt: number | null = null;
  const tick = () => {
    if (tickAt !== null) return;
    tickAt = now + 100;
    events.push(tickAt, -1);
  };
  const retry = (id: number, reason: "overload" | "unknown") => {
    const backoff = Math.min(BACKOFF[kind].initialMs(reason) * 2 ** retries[id]!, MAX_BACKOFF_MS);
    retries[id] = Math.min(retries[id]! + 1, 30);
    events.push(now + backoff + backoff * (random() - 0.5), id);
  };
  /** The server's sync capacity since the last call: admits pending (drop) or waiting (room) sessions. */
  const pump = () => {
    if (server === "accept-then-drop") {
      // Sync at the admission rate, oldest first; whatever waited past its drop time was dropped (and retried by then).
      let capacity = Math.floor(((now - lastPump) / 1_000) * rate);
      while (capacity > 0 && pendingHead < pending.length) {
        pendingHead++;
        synced++;
        capacity--;
      }
    } else if (server === "waiting-room") {
      synced += room.admit(() => admission.tryAdmit(synced, now)).length;
    }
    lastPump = now;
  };
  while (events.size > 0 && synced < clients) {
    const [time, id] = events.pop();
    if (time > ASSUMPTIONS.horizonMs) break;
    now = time;
    if (id < 0) tickAt = null;
    pump();
    if (room.size > 0 || pending.length > pendingHead) tick();
    if (id < 0) continue; // the server's turn
    attempts++;
    count(attemptsPerSecond);
    if (server === "refuse-429") {
      if (admission.tryAdmit(synced, now)) {
        synced++;
        count(acceptedPerSecond);
      } else retry(id, "unknown"); // a refused upgrade is an unknown close to the client
    } else if (server === "waiting-room") {
      room.add(id, now);
      count(acceptedPerSecond);
      tick();
    } else {
      count(acceptedPerSecond);
      if (BACKOFF[kind].resetOnOpen) retries[id] = 0;
      const queued = pending.length - pendingHead;
      if (queued < ASSUMPTIONS.dropQueuePerObject * objects) {
        pending.push(id);
        tick();
      } else {
        // Dropped: the overflowing queue closes the socket (an internal error to the client) after a while.
        const dropAt = now + ASSUMPTIONS.dropAfterMs;
        const saved = now;
        now = dropAt;
        retry(id, "unknown");
        now = saved;
      }
    }
  }
  return {
    equilibriumMs: synced >= clients ? now : null,
    attempts,
    peakAttemptsPerSecond: Math.max(0, ...attemptsPerSecond.values()),
    peakAcceptedPerSecond: Math.max(0, ...acceptedPerSecond.values()),
  };
}

function main(): void {
  const arg = process.argv.includes("--clients") ? process.argv[process.argv.indexOf("--clients") + 1]! : "100000,1000000";
  const sizes = arg.split(",").map(Number);
  console.log("# Reconnect wave simulation\n");
  console.log(
    `Assumptions: ${Object.entries(ASSUMPTIONS)
      .map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`)
      .join(
        "; ",
      )}. Every client is disconnected at once and retries by its kind's logic; "synced" is a session holding its first result. Admission and the waiting room run the server's code on the simulated clock.\n`,
  );
  for (const clients of sizes) {
    const rows: (string | number)[][] = [];
    for (const server of ["accept-then-drop", "refuse-429", "waiting-room"] as Server[]) {
      for (const kind of Object.keys(BACKOFF) as ClientKind[]) {
        const started = performance.now();
        const r = simulate(clients, server, kind);
        rows.push([
          server,
          kind,
          r.equilibriumMs === null ? `not within ${ASSUMPTIONS.horizonMs / 60_000} min` : `${(r.equilibriumMs / 1_000).toFixed(1)} s`,
          r.attempts.toLocaleString("en-US"),
          `${(r.attempts / clients).toFixed(2)}`,
          r.peakAttemptsPerSecond.toLocaleString("en-US"),
          `${((performance.now() - started) / 1_000).toFixed(1)} s`,
        ]);
      }
    }
    console.log(
      `## ${clients.toLocaleString("en-US")} clients\n\n${table(["server", "client", "until all synced", "socket attempts", "attempts per client", "peak attempts/s", "simulated in"], rows)}\n`,
    );
  }
}

main();
