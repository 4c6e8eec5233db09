/** One `wrangler dev` per end-to-end test file: started before its tests, stopped after them. */
import { afterAll, beforeAll } from "vitest";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";

/** Registers the file's hooks; read `.url` inside tests (the server exists once `beforeAll` ran). */
export function devServerForFile(): { readonly url: string } {
  let server: DevServer | undefined;
  beforeAll(async () => {
    server = await startDevServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    get url() {
      if (!server) throw new Error("wrangler dev is not running (used outside a test?)");
      return server.url;
    },
  };
}
