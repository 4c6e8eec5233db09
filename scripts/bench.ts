/**
 * `npm run bench`: every benchmark, side by side, printed as markdown for
 * docs/BENCHMARKS.md. Runs in plain Node against the engine (no Cloudflare).
 */
import { machine } from "./bench/harness.ts";
import { benchSubscriptionIndex } from "./bench/subscription-index.ts";

console.log(`# calmsync benchmarks\n\n${new Date().toISOString().slice(0, 10)} · ${machine()}\n`);
console.log(`## Subscription index: 10,000 writes\n\n${benchSubscriptionIndex()}\n`);
