/**
 * Whether a deployment name exists, as the Worker decides it before any
 * deployment object is addressed (so a request for a name that does not
 * exist starts none):
 *
 * - declared by itself in `DECLARED_DEPLOYMENTS`: yes, asking no one;
 * - remembered by this isolate: its answer (a yes for good, since
 *   deployments are never deleted; a no for `UNKNOWN_DEPLOYMENT_TTL_MS`, so a name an
 *   operator creates is reachable from every isolate soon after);
 * - otherwise the directory (src/deployment/directory.ts) is asked once: a
 *   created name exists; a wildcard-matched name exists if it was made before
 *   or its pattern has made fewer than `WILDCARD_DEPLOYMENT_LIMIT` (this use
 *   then makes it); anything else does not.
 *
 * Both memories are bounded, so a stranger cycling through random names
 * costs this isolate a fixed amount of memory and the directory one lookup
 * per name.
 */
import { declaration, wildcardDeploymentLimit, type Env } from "./env.ts";
import { directoryStub } from "./deployment/directory.ts";
import { MAX_REMEMBERED_DEPLOYMENTS, UNKNOWN_DEPLOYMENT_TTL_MS } from "./knobs/fixed.ts";

export type NameAnswer = { exists: true } | { exists: false; wildcardFull?: { pattern: string; limit: number } };

export class DeploymentNames {
  private readonly known = new Set<string>();
  private readonly unknown = new Map<string, { until: number; answer: NameAnswer }>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  async resolve(env: Env, name: string): Promise<NameAnswer> {
    const declared = declaration(env, name);
    if (declared === "exact" || this.known.has(name)) return { exists: true };
    const remembered = this.unknown.get(name);
    if (remembered && remembered.until > this.now()) return remembered.answer;
    this.unknown.delete(name);
    let answer: NameAnswer;
    if (declared === null) answer = { exists: await directoryStub(env).has(name) };
    else {
      const limit = wildcardDeploymentLimit(env);
      const claim = await directoryStub(env).claim(name, declared.pattern, limit);
      answer = claim.ok ? { exists: true } : { exists: false, wildcardFull: { pattern: declared.pattern, limit } };
    }
    if (answer.exists) this.created(name);
    else {
      if (this.unknown.size >= MAX_REMEMBERED_DEPLOYMENTS) this.unknown.delete(this.unknown.keys().next().value!);
      this.unknown.set(name, { until: this.now() + UNKNOWN_DEPLOYMENT_TTL_MS, answer });
    }
    return answer;
  }

  /** `name` exists (this isolate created it, or learnt it does). */
  created(name: string): void {
    this.unknown.delete(name);
    if (this.known.size >= MAX_REMEMBERED_DEPLOYMENTS) this.known.delete(this.known.keys().next().value!);
    this.known.add(name);
  }
}
