import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer } from "./lib/wrangler-dev.ts";
const app = process.argv[2]!;
const server = await startDevServer({ app, modules: ["/work/main/test/fixtures/vector-probe/probe.ts"] });
const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
const mb = () => Math.round((server.runtimeRssBytes() ?? 0) / 1048576);
console.log("start", mb());
const row = () => ({ embedding: Array.from({ length: 1536 }, () => Math.round((Math.random() - 0.5) * 1e4) / 1e4), genre: "a" });
const t = performance.now();
for (let b = 0; b < 80; b++) {
  await client.mutation(anyApi.probe!.insert!, { rows: Array.from({ length: 64 }, row) });
  if (b % 20 === 19) console.log(b + 1, "batches", mb(), "MB", ((performance.now() - t) / (b + 1)).toFixed(0), "ms/batch");
}
await new Promise((r) => setTimeout(r, 3000));
console.log("after 3 s", mb());
await server.stop();
