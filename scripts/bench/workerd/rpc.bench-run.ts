/**
 * The cost of one Durable Object calling another over RPC inside workerd:
 * the hop every design that spreads a deployment over several objects adds
 * (see ../shared/reference/scale-out.md, "Measure it"). Object A calls
 * object B: an empty call (`health`), in turn and 50 in flight, and a call
 * answering a 20-message query result. Local workerd only: in production the
 * objects may sit in different machines of one colo, which adds network time
 * this cannot see. Prints one markdown table.
 */
import { it } from "vitest";
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { deploymentStub, type Env } from "../../../src/env.ts";

const CALLS = 2_000;
const IN_FLIGHT = 50;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

it("RPC between two Durable Objects in workerd", async () => {
  const bindings = env as Env;
  const target = deploymentStub(bindings, "rpc-b");
  await target.run("mutation", "messages:send", { chatId: "warm", author: "a", body: "x" }, "bench");
  for (let i = 0; i < 20; i++) await target.run("mutation", "messages:send", { chatId: "rpc", author: "bench", body: "m".repeat(1_000) }, "bench");
  const rows: string[] = [];
  await runInDurableObject(bindings.DEPLOYMENTS.getByName("rpc-a"), async () => {
    const measure = async (label: string, call: () => Promise<unknown>) => {
      for (let i = 0; i < 100; i++) await call();
      const times: number[] = [];
      for (let i = 0; i < CALLS; i++) {
        const start = performance.now();
        await call();
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      const start = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
        while (next++ < CALLS) await call();
      }));
      const rate = CALLS / ((performance.now() - start) / 1000);
      rows.push(`| ${label} | ${percentile(times, 50).toFixed(3)} ms | ${percentile(times, 99).toFixed(3)} ms | ${Math.round(rate).toLocaleString("en-US")} |`);
    };
    await measure("empty call (`health`)", () => target.health());
    await measure("query answering 20 messages of 1 KB (~22 KB)", () => target.run("query", "messages:list", { chatId: "rpc" }, "bench"));
  });
  const table = ["| call from object A to object B | p50 in turn | p99 in turn | calls/s, 50 in flight |", "| --- | ---: | ---: | ---: |", ...rows].join("\n");
  console.log(`BENCH-TABLE:rpc\n${table}\nBENCH-END`);
});
