/**
 * Where a V8 CPU profile's time went, by part of the system rather than by function: a sample
 * counts for the innermost frame that belongs to a known part (a frame's script names it). A
 * native call (SQLite's `exec`, a socket's `send`) counts as its own part where it is one the
 * runtime does for us, else for the part that called it. Async continuations start fresh stacks
 * in a profile, so "the query re-run" cannot be summed from a call tree; parts by file can.
 */

/** The parts of a `.cpuprofile` this table knows, first match wins, on the frame's script URL. */
const PARTS: [name: string, url: RegExp][] = [
  ["benchmark's own clients (sockets, writers)", /scripts\/bench\//],
  // The pool's own worker module is named bare ("index.mjs"); it wraps setTimeout (a stack capture per call) and every export.
  ["vitest pool harness (absent deployed)", /vitest-plugin|test-internal|\/vitest\/|^index\.mjs$/],
  ["convex/server (the functions' runtime)", /node_modules\/convex\//],
  ["the app's functions (convex/)", /\/convex\/[^/]+\.(ts|js)/],
  ["Worker route (hono, deployment lookup)", /node_modules\/hono|src\/worker\.ts|src\/http-context|src\/deployment-names/],
  ["engine: loop guard, deadlines", /src\/engine\/sync-guard/],
  [
    "engine: transaction, reads, values, syscalls",
    /src\/engine\/(syscalls|transaction|query-stream|read-set|values|keys|index-range|interval-tree|validators)/,
  ],
  ["engine: runs, lock, commit, logs", /src\/(engine|operations)\//],
  ["search index upkeep", /src\/search\/|sqlite-search-storage/],
  ["sync: query instances, result hash", /src\/sync\/(query-instances|subscription|hash)/],
  ["sync: sessions, Transitions, refresh", /src\/sync\//],
  ["deployment object (store, sockets, status)", /src\/deployment\//],
  ["runtime's timers (nodejs_compat)", /internal_timers/],
];

/** Native functions that are the runtime's own work, named apart whoever called them. */
const NATIVE_PARTS: Record<string, string> = {
  exec: "SQLite (statements)",
  toArray: "SQLite (statements)",
  one: "SQLite (statements)",
  transactionSync: "SQLite (statements)",
  send: "WebSocket send",
  serializeAttachment: "WebSocket attachment",
  "(garbage collector)": "garbage collection",
  "(program)": "V8 and runtime outside JavaScript (program)",
  "(idle)": "idle",
};

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function partOfScript(url: string): string | null {
  if (!url) return null;
  for (const [name, pattern] of PARTS) if (pattern.test(url)) return name;
  return null;
}

/** Microseconds per part, and the busy total (all but idle). */
export function partsOf(profile: CpuProfile): { parts: Map<string, number>; busyUs: number; totalUs: number } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i + 1] ?? 0;
    totalUs += us;
    selfUs.set(id, (selfUs.get(id) ?? 0) + us);
  });
  const parts = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const leaf = byId.get(id)!.callFrame;
    let part = leaf.url ? partOfScript(leaf.url) : Object.hasOwn(NATIVE_PARTS, leaf.functionName) ? NATIVE_PARTS[leaf.functionName]! : null;
    for (let at = parentOf.get(id); part === null && at !== undefined; at = parentOf.get(at)) part = partOfScript(byId.get(at)!.callFrame.url);
    part ??= "other (native, no known caller)";
    parts.set(part, (parts.get(part) ?? 0) + us);
  }
  return { parts, busyUs: totalUs - (parts.get("idle") ?? 0), totalUs };
}

/** One markdown table, the windows side by side: µs per unit of each part, and its share of the window's busy time. */
export function partsTable(windows: { label: string; unit: string; units: number; profile: CpuProfile }[]): string {
  const analysed = windows.map((window) => ({ ...window, ...partsOf(window.profile) }));
  const names = new Set<string>();
  for (const window of analysed) for (const name of window.parts.keys()) names.add(name);
  const busiest = (name: string) => Math.max(...analysed.map((window) => (window.parts.get(name) ?? 0) / window.units));
  const ordered = [...names].filter((name) => name !== "idle").sort((a, b) => busiest(b) - busiest(a));
  const cell = (window: (typeof analysed)[number], us: number) => `${(us / window.units).toFixed(0)} µs (${((100 * us) / window.busyUs).toFixed(0)}%)`;
  return [
    `| part | ${analysed.map((window) => `${window.label}: µs per ${window.unit}`).join(" | ")} |`,
    `| --- | ${analysed.map(() => "---:").join(" | ")} |`,
    ...ordered.map((name) => `| ${name} | ${analysed.map((window) => cell(window, window.parts.get(name) ?? 0)).join(" | ")} |`),
    `| **busy, all parts** | ${analysed.map((window) => `**${(window.busyUs / window.units).toFixed(0)} µs**`).join(" | ")} |`,
    `| idle (the thread waited) | ${analysed.map((window) => `${((window.parts.get("idle") ?? 0) / window.units).toFixed(0)} µs`).join(" | ")} |`,
    "",
    `Windows: ${analysed.map((window) => `${window.label}, ${window.units.toLocaleString("en-US")} ${window.unit}s in ${(window.totalUs / 1e6).toFixed(2)} s`).join("; ")}.`,
  ].join("\n");
}
