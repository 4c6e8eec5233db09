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
import type { Env } from "../../../src/env.ts";
import { deploymentStub } from "../../../src/deployment/deployment.ts";

const CALLS = 2_000;
const IN_FLIGHT = 50;

it("RPC between two Durable Objects in workerd", async () => {
  const bindings = env as Env;
  const seed = deploymentStub(bindings, "rpc-b");
  for (let i = 0; i < 20; i++) await seed.run("mutation", "messages:send", { chatId: "rpc", author: "bench", body: "m".repeat(1_000) }, "bench");
  const rows: string[] = [];
  await runInDurableObject(bindings.DEPLOYMENTS.getByName("rpc-a"), async (instance) => {
    // A stub made inside object A, as its own code would make it (I/O belongs to the object that made it).
    const target = deploymentStub((instance as unknown as { env: Env }).env, "rpc-b");
    const measure = async (label: string, call: () => Promise<unknown>) => {
      for (let i = 0; i < 100; i++) await call();
      // workerd's clock moves in whole milliseconds, so one call is timed as the mean of many.
      const inTurnStart = performance.now();
      for (let i = 0; i < CALLS; i++) await call();
      const meanMs = (performance.now() - inTurnStart) / CALLS;
      const start = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next++ < CALLS) await call();
        }),
      );
      const rate = CALLS / ((performance.now() - start) / 1000);
      rows.push(`| ${label} | ${meanMs.toFixed(3)} ms | ${Math.round(rate).toLocaleString("en-US")} |`);
    };
    await measure("empty call (`health`)", () => target.health());
    await measure("query answering 20 messages of 1 KB (~22 KB)", () => target.run("query", "messages:list", { chatId: "rpc" }, "bench"));
  });
  const table = ["| call from object A to object B | mean, one at a time | calls/s, 50 in flight |", "| --- | ---: | ---: |", ...rows].join("\n");
  console.log(`BENCH-TABLE:rpc\n${table}\nBENCH-END`);
});
