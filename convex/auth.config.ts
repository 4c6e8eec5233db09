/**
 * Who may sign in (Convex's format: https://docs.convex.dev/auth/advanced/custom-auth).
 *
 * - Convex Auth (convex/auth.ts), the chat page's sign-in: its tokens name the
 *   deployment's own HTTP actions URL as their issuer, as its docs write it.
 *
 * Other providers come from the deployment's environment, as with Convex: set the
 * variables with `wrangler secret put` (or in `.dev.vars` locally).
 *
 * - An OpenID Connect provider (Clerk, Auth0, ...): AUTH_OIDC_DOMAIN, the
 *   issuer (for Clerk, the "Frontend API URL"), and AUTH_OIDC_APPLICATION_ID,
 *   the audience its tokens carry (Clerk's "convex" JWT template: "convex").
 * - Any issuer of RS256 JWTs: AUTH_JWT_ISSUER and AUTH_JWT_JWKS (a URL or a
 *   data: URI), with AUTH_JWT_APPLICATION_ID if its tokens carry an audience.
 *
 * Under `npm run dev` calmsync adds its local development issuer on top
 * (`POST /api/auth/dev-token`, for scripts and tests).
 */
import type { AuthConfig } from "convex/server";

const env = process.env;

export default {
  providers: [
    {
      domain: process.env.CONVEX_SITE_URL!,
      applicationID: "convex",
    },
    ...(env.AUTH_OIDC_DOMAIN ? [{ domain: env.AUTH_OIDC_DOMAIN, applicationID: env.AUTH_OIDC_APPLICATION_ID ?? "convex" }] : []),
    ...(env.AUTH_JWT_ISSUER
      ? [
          {
            type: "customJwt" as const,
            issuer: env.AUTH_JWT_ISSUER,
            jwks: env.AUTH_JWT_JWKS!,
            algorithm: "RS256" as const,
            applicationID: env.AUTH_JWT_APPLICATION_ID,
          },
        ]
      : []),
  ],
} satisfies AuthConfig;
