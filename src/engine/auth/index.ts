/** Who is calling: the app's auth providers, token verification and the local development issuer. */
export * from "./auth-config.ts";
export * from "./config-variables.ts";
export * from "./identity.ts";
export * from "./remote-documents.ts";
export * from "./token-verifier.ts";
export * from "./dev-issuer.ts";
export * from "./deployment-key.ts";
