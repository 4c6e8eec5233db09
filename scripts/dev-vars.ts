/**
 * Before `npm run dev`: makes sure `.dev.vars` (local secrets, git-ignored)
 * holds an ADMIN_KEY, creating a random one the first time, and prints the
 * dashboard link that signs in with it (in the URL fragment, which the
 * browser never sends to the server).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const path = ".dev.vars";
const current = existsSync(path) ? readFileSync(path, "utf8") : "";
let key = /^ADMIN_KEY\s*=\s*"?([^"\n]+)"?\s*$/m.exec(current)?.[1];
if (!key) {
  key = crypto.randomUUID().replaceAll("-", "");
  writeFileSync(path, `${current}${current && !current.endsWith("\n") ? "\n" : ""}ADMIN_KEY="${key}"\n`);
  console.log(`Created an ADMIN_KEY for local development in ${path}.`);
}
console.log(`Dashboard: http://127.0.0.1:8787/dashboard#key=${key}`);
