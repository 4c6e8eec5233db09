/**
 * The waiting room with unmodified official clients, current and the pre-fix
 * `convex@1.24.6` (installed under an npm alias): 60 clients arrive while
 * there is room for 10; the other 50 wait 30 s with their sockets open; then
 * room returns for all. Each client opens its socket at most twice and all
 * 60 hold live results within 5 s of the room returning.
 */
import { describe, expect, it } from "vitest";
import { ConvexClient } from "convex/browser";
import { ConvexClient as ConvexClient1246 } from "convex-1.24.6/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const CLIENTS = 60;
const ROOM = 10;
const WAIT_MS = 30_000;

const server = devServerForFile();

type Client = { onUpdate: (query: never, args: object, callback: (value: unknown) => void) => unknown; close: () => Promise<void> };
const kinds: [string, new (url: string, options: object) => Client][] = [
  ["convex (current)", ConvexClient as never],
  ["convex@1.24.6", ConvexClient1246 as never],
];

/** One object, or sockets spread over four sync shards (each admits its share of the room). */
const placements: [string, number][] = [
  ["one object", 1],
  ["4 sync shards", 4],
];

describe("a waiting room for unmodified official clients (wrangler dev)", () => {
  for (const [placement, syncShards] of placements)
    for (const [kind, Client] of kinds) {
      it(`${placement}, ${kind}: ${CLIENTS} clients, room for ${ROOM} for 30 s, then for all: at most two sockets each, all live within 5 s`, async () => {
        const url = await createDeployment(server.url, `waiting-${syncShards}-${kind.replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`);
        // Before any socket: the Worker asks a deployment it has not seen for its shard count at once.
        await setKnobs(url, { maxSessions: ROOM, syncShards });
        const opens = new Array<number>(CLIENTS).fill(0);
        const results: unknown[] = new Array(CLIENTS).fill(undefined);
        const clients = Array.from({ length: CLIENTS }, (_, i) => {
          // Counts every socket this client opens (a reconnect opens another).
          class CountingWebSocket extends WebSocket {
            constructor(address: string, protocols?: string | string[]) {
              super(address, protocols);
              opens[i]!++;
            }
          }
          const client = new Client(url, {
            skipConvexDeploymentUrlCheck: true,
            webSocketConstructor: CountingWebSocket,
            unsavedChangesWarning: false,
            logger: false,
            verbose: false,
          });
          client.onUpdate(anyApi.messages!.list! as never, { chatId: "waiting" }, (value) => (results[i] = value));
          return client;
        });
        try {
          await until(() => results.filter((r) => r !== undefined).length === ROOM, `${ROOM} first results`, 20_000);
          await until(() => opens.every((n) => n >= 1), "every socket open", 20_000);
          // The outage itself: longer than the object's idle hibernation, so the object sleeps with everyone
          // waiting, and the knob change below is what wakes it. (No status is asked meanwhile: that would load
          // the sessions before the wake that matters, as nothing does for a real deployment.)
          await new Promise((r) => setTimeout(r, WAIT_MS));
          // Nobody waiting was sent a result. A client that kept its one socket and holds a result must be one of
          // the ROOM admitted; a client that reconnected (allowed: a starved machine can delay pings past the
          // client's 60 s silence limit) may hold the result of an earlier admission, so it is not counted.
          const resultsOnFirstSocket = results.filter((r, i) => r !== undefined && opens[i] === 1).length;
          if (opens.every((n) => n === 1)) expect(resultsOnFirstSocket).toBe(ROOM);
          else expect(resultsOnFirstSocket).toBeLessThanOrEqual(ROOM);

          const roomReturns = Date.now();
          await setKnobs(url, { maxSessions: 1_000 });
          await until(() => results.every((r) => r !== undefined), "every client's live result", 5_000);
          const allLiveMs = Date.now() - roomReturns;
          console.log(
            `${placement}, ${kind}: all ${CLIENTS} live ${allLiveMs} ms after the room returned; sockets opened per client: max ${Math.max(...opens)}, total ${opens.reduce((a, b) => a + b, 0)}`,
          );
          expect(Math.max(...opens)).toBeLessThanOrEqual(2);
          const after = await adminStatus<{
            uptimeMs: number;
            sessions: number;
            shards: { sessions: number; waiting: number }[];
            limits: { waiting: { current: number } };
          }>(url);
          // The whole deployment's sessions (the object's own and its shards'), nobody still waiting anywhere.
          expect(after.sessions).toBe(CLIENTS);
          expect(after.limits.waiting.current + after.shards.reduce((n, shard) => n + shard.waiting, 0)).toBe(0);
          if (syncShards > 1) expect(after.shards.filter((shard) => shard.sessions > 0).length).toBeGreaterThan(1);
          // The object started again during the wait (it hibernated with everyone waiting): the case this test is for.
          // (With shards the sockets are theirs; the deployment object has nothing to keep it awake either.)
          expect(after.uptimeMs).toBeLessThan(WAIT_MS);
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
      }, 120_000);
    }
});
