/**
 * Bundles a Convex Auth test page for the browser, in memory: the page imports
 * "AUTH_REACT", which names the line of the library under test (its `react`
 * entry, possibly through an npm alias), so one page serves 0.0.95 and 2.0.0.
 */
import { createServer } from "node:http";
import { build } from "esbuild";

export async function bundleAuthPage(entry: string, authReact: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    jsx: "automatic",
    alias: { AUTH_REACT: authReact },
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
  });
  return result.outputFiles[0]!.text;
}

export interface PageServer {
  url: string;
  close: () => Promise<void>;
}

/**
 * Serves the bundled page on its own loopback origin, the way an app's dev
 * server (Vite) does, beside the deployment: the page talks to the deployment
 * named in its `?deployment=` parameter. (Chromium's local-network checks
 * refuse a page faked into the deployment's origin with no real server.)
 */
export async function servePage(script: Promise<string> | string): Promise<PageServer> {
  const html = `<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module">${await script}</script>`;
  const server = createServer((_request, response) => response.writeHead(200, { "Content-Type": "text/html" }).end(html));
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((done) => server.close(() => done())) };
}
