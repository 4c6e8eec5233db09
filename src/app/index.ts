/**
 * The example chat app: its schema and its function modules, keyed by module
 * path (`messages` -> `messages:list`, `messages:send`).
 */
import schema from "./schema.ts";
import * as messages from "./messages.ts";
import type { AppDefinition } from "../engine/index.ts";

export const app: AppDefinition = { schema, modules: { messages } };
