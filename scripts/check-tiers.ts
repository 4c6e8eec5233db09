/**
 * `npm run check:tiers` (also part of `npm test`): every wrangler environment
 * of the manifest matches its tier. Exits 1 naming each difference.
 */
import { checkEnvironment, DEFAULT_CONFIG, ENVIRONMENTS } from "./lib/tier-check.ts";

const configPath = process.argv.includes("--config") ? process.argv[process.argv.indexOf("--config") + 1]! : DEFAULT_CONFIG;
const problems = ENVIRONMENTS.flatMap((environment) => checkEnvironment(environment, configPath));
if (problems.length > 0) {
  console.error(`Tier check failed for ${configPath}:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(`Tier check: ${ENVIRONMENTS.join(", ")} match their tiers (${configPath}).`);
