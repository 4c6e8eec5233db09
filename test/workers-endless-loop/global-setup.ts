/** Generates the endless-loop fixture app (its guarded copies included) before its workers project bundles it. */
import { fileURLToPath } from "node:url";
import { generate } from "../../scripts/codegen.ts";

export default function setup(): void {
  generate(fileURLToPath(new URL("../fixtures/endless-loop/convex", import.meta.url)));
}
