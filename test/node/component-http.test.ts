/**
 * A component's HTTP routes (issue 25): `app.use(component, { httpPrefix })`
 * serves the component's `http.ts` under the prefix, as Convex mounts it; its
 * handlers run in the component (their calls name its functions, its tables),
 * the app's own routes keep the root, and an instance not mounted serves
 * nothing. Fixture: test/fixtures/http-components (a component beside the
 * app, its compiled files written by hand).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { generate } from "../../scripts/codegen.ts";
import {
  Components,
  Engine,
  MemoryStore,
  Schema,
  componentSchemas,
  findHttpRouter,
  loadApp,
  registerModules,
  type GeneratedApp,
} from "../../src/engine/index.ts";

const FIXTURE = new URL("../fixtures/http-components/convex/", import.meta.url).pathname;

describe("a component's HTTP routes under httpPrefix", () => {
  const result = generate(FIXTURE);

  it("codegen records the mount of each instance", () => {
    expect(result.components).toEqual(["greeter", "unmounted"]);
    const registry = readFileSync(`${FIXTURE}_generated/modules.js`, "utf8");
    expect(registry).toContain('"greeter": { definition: component0, package: null, httpPrefix: "/greeter/" },');
    expect(registry).toContain('"unmounted": { definition: component0, package: null },');
  });

  it("serves the component's routes under its prefix, in the component; the app's at the root; an unmounted instance's nowhere", async () => {
    const { app: generated } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const app = await loadApp(generated);
    expect(app.moduleErrors).toEqual({});
    const components = Components.load(registerModules(app.modules), app.components);
    const engine = new Engine({
      schema: new Schema(app.schema, componentSchemas(generated)),
      functions: components.root.functions,
      components,
      httpRouter: findHttpRouter(app.modules),
      store: new MemoryStore(),
    });
    const get = async (path: string) => {
      const response = await engine.runHttpAction(new Request(`http://calmsync.test${path}`));
      return response ? `${response.status} ${await response.text()}` : null;
    };
    expect(await get("/greeter/hello?who=ann")).toBe("200 hello ann, visit 1 (/greeter/hello)");
    expect(await get("/greeter/hello?who=bob")).toBe("200 hello bob, visit 2 (/greeter/hello)");
    expect(await get("/hello")).toBe("200 the app's hello");
    expect(await get("/unmounted/hello")).toBeNull();
    expect(await get("/greeter/other")).toBeNull();
    // The visits were the mounted instance's own: the other instance has none.
    const count = (path: string) => engine.exclusive(async () => (await engine.executeQuery(engine.functionAt("lib:count", path)!, {})).value);
    expect(await count("greeter")).toBe(2);
    expect(await count("unmounted")).toBe(0);
  });
});
