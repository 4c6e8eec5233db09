/**
 * A component's own crons through the whole deployment (issue 25): the
 * fixture app (test/fixtures/components-app) under `wrangler dev` installs
 * `@convex-dev/action-retrier`, whose package ships a `crons.ts` ("Cleanup
 * expired runs", daily). On start the deployment records it in that
 * instance's `_cron_jobs`, and status lists it under the instance, none
 * anywhere else.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";

/** What status says of an instance (src/deployment/component-status.ts, whose types need the Workers runtime's). */
interface ComponentStatus {
  path: string;
  package: string | null;
  tables: { name: string; documents: number }[];
  cronJobs: number;
}

const APP = fileURLToPath(new URL("../../fixtures/components-app/convex", import.meta.url));

describe("a component's own crons under wrangler dev", () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await startDevServer({ app: APP });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("records the action retrier's cron job in its own instance on start", async () => {
    const deadline = Date.now() + 15_000;
    let components: ComponentStatus[] = [];
    // Reconciling crons.ts runs just after the object starts: the job may land a moment after the first status.
    while (Date.now() < deadline) {
      const response = await fetch(`${server.url}/api/admin/status`, { headers: { Authorization: `Bearer ${TEST_ADMIN_KEY}` } });
      expect(response.status).toBe(200);
      components = ((await response.json()) as { components: ComponentStatus[] }).components;
      if (components.some((component) => component.cronJobs > 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const retrier = components.find((component) => component.path === "actionRetrier")!;
    expect(retrier).toMatchObject({ package: "@convex-dev/action-retrier@0.3.1", cronJobs: 1 });
    expect(retrier.tables.find((table) => table.name === "_cron_jobs")?.documents).toBe(1);
    expect(components.filter((component) => component.cronJobs > 0).map((component) => component.path)).toEqual(["actionRetrier"]);
  });
});
