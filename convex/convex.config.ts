// The components the example app installs, as their READMEs show (issue 25).
import { defineApp } from "convex/server";
import rateLimiter from "@convex-dev/rate-limiter/convex.config.js";
import shardedCounter from "@convex-dev/sharded-counter/convex.config.js";
import workpool from "@convex-dev/workpool/convex.config.js";

const app = defineApp();
app.use(rateLimiter);
app.use(shardedCounter);
app.use(workpool, { name: "digestPool" });
export default app;
