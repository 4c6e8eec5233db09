/**
 * `npm run logs -- [<deployment>] [--url URL] [--function F] [--level L] [--no-follow]`:
 * tails a deployment's function runs (their console lines, outcome,
 * duration and request id) from `/api/admin/logs`. A stream ends after the
 * knob logStreamMaxMs; this resumes it where it ended (and after a dropped
 * connection), so nothing is printed twice or skipped unless the
 * deployment's ring dropped it first, which it says.
 *
 * The admin key comes from ADMIN_KEY or the `.dev.vars` that `npm run dev`
 * wrote; the URL defaults to the local `npm run dev` (CALMSYNC_URL too).
 */
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { AdminError, adminCall, adminTarget, type AdminTarget } from "./lib/admin.ts";

/** How long to wait before opening the stream again after a failure (the server may be restarting). */
const RETRY_MS = 1_000;

type Line =
  | {
      type: "run";
      seq: number;
      ts: number;
      requestId: string;
      path: string;
      kind: string;
      outcome: string;
      error: string | null;
      durationMs: number;
      level: string;
      lines: string[];
    }
  | { type: "missed"; count: number }
  | { type: "end"; next: number; reason: "caught-up" | "time" | "replaced" };

function print(line: Line): void {
  if (line.type === "missed") return void console.log(`… ${line.count} runs missed (the deployment's log ring dropped them first)`);
  if (line.type !== "run") return;
  const time = new Date(line.ts).toISOString().slice(11, 23);
  console.log(`${time} [${line.requestId}] ${line.kind} ${line.path} ${line.outcome} ${line.durationMs}ms`);
  for (const text of line.lines) console.log(`    ${text}`);
  if (line.error) console.log(`    error: ${line.error}`);
}

/** Reads one stream to its end; returns where to resume and why it ended (null: the connection dropped). */
async function tail(target: AdminTarget, query: URLSearchParams, since: number | null): Promise<{ next: number | null; reason: string | null }> {
  if (since !== null) query.set("since", String(since));
  const response = await adminCall(target, `logs?${query}`);
  const decoder = new TextDecoder();
  let rest = "";
  let next = since;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    const parts = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = parts.pop()!;
    for (const part of parts) {
      const line = JSON.parse(part) as Line;
      if (line.type === "run") next = line.seq;
      if (line.type === "end") return { next: line.next, reason: line.reason };
      print(line);
    }
  }
  return { next, reason: null };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: "string" },
      function: { type: "string" },
      level: { type: "string" },
      "no-follow": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help)
    return void console.log("Usage: npm run logs -- [<deployment>] [--url URL] [--function F] [--level debug|log|info|warn|error] [--no-follow]");
  const target = adminTarget({ url: values.url, deployment: positionals[0] });
  const query = new URLSearchParams();
  if (values.function) query.set("function", values.function);
  if (values.level) query.set("level", values.level);
  if (values["no-follow"]) query.set("follow", "0");
  let since: number | null = null;
  for (;;) {
    let ended: { next: number | null; reason: string | null };
    try {
      ended = await tail(target, new URLSearchParams(query), since);
    } catch (error) {
      if (error instanceof AdminError && error.status < 500) throw error;
      console.error(`(log stream failed: ${error instanceof Error ? error.message : error}; retrying)`);
      await sleep(RETRY_MS);
      continue;
    }
    since = ended.next;
    if (ended.reason === "caught-up") return;
    if (ended.reason === "replaced")
      throw new Error("(stream ended: the deployment's tails were at their limit, knob maxLogStreams, and a newer one took this one's place)");
    if (ended.reason === null) await sleep(RETRY_MS);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
