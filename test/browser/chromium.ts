/** Debian's Chromium for the browser tests (playwright's own browser download cannot work here). */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** The Chromium binary, or undefined: each browser test is then skipped, saying how to get one. */
export const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (path): path is string => !!path && existsSync(path),
);

/** Warns once per test file that `what` is skipped, when there is no Chromium. */
export function warnIfNoChromium(what: string): void {
  if (!CHROMIUM) console.warn(`Skipping ${what}: no Chromium found. Install it with \`apt-get install -y chromium\` (or set CHROMIUM_PATH).`);
}

/** A headless Chromium (call only when `CHROMIUM` is set). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM!, args: ["--no-sandbox"] });
}
