// The parts of castellan.yaml that decide who may do what: `roles`, `policy` and `oidc`.
// Each schema reads the operator's snake_case YAML and yields the camelCase shape the auth
// modules use, with every default filled in, so policy code never has to guess a default.
// `policy` and `roles` are parsed by the one schema of each in config/schema.ts; tests build configs with
// the `parse*` helpers. `oidcSchema` is the token verifier's own settings (a resolved secret, seconds), built
// from `auth.oidc` by `oidcConfigFromSettings`.
import { z } from 'zod';
import { DEFAULT_CLIENTS, OUTPUT_FOR_OTHERS, policySchema, rolesSchema, TOKEN_FORMATS, type PolicySettings } from '../config/schema.js';
import { ORIGINS, type Origin, type Role } from './types.js';
import { RISKS, type Risk } from '../config/vocabulary.js';

/** IdP group names per Castellan role (`roles.admin: [admins]`). */
export type RoleMap = Readonly<Record<Role, readonly string[]>>;

export interface PolicyConfig {
  /** `policy.read_only`: refuse everything but read tools. */
  readonly readOnly: boolean;
  /** `policy.approvals.required`: distinct approvers needed (M). */
  readonly approvalsRequired: number;
  /** `policy.approvals.allow_self_approval`: a requester may approve their own request (never via MCP). */
  readonly allowSelfApproval: boolean;
  /** `policy.require_approval`: per risk, the origins whose requests wait for approval. */
  readonly requireApproval: Readonly<Record<Risk, readonly Origin[]>>;
  /**
   * `policy.visibility.output_for_others`: whose output a person who neither asked for nor
   * approves a job may read: `read` jobs only (default), `all`, or `none`.
   */
  readonly outputForOthers: OutputForOthers;
}

export { OUTPUT_FOR_OTHERS };
export type OutputForOthers = (typeof OUTPUT_FOR_OTHERS)[number];

/** `auth.clients`: OIDC client id (client_id / azp) -> the origin its tokens carry. */
export type ClientOrigins = Readonly<Record<string, Origin>>;

/**
 * Used when `auth.clients` is absent: Castellan's own CLI client (the README's Authelia
 * snippet registers it as a public native client) is person-driven; every other client,
 * known AI clients included, gets the most restricted origin.
 */
export const DEFAULT_CLIENT_ORIGINS: ClientOrigins = DEFAULT_CLIENTS;

export interface AuthConfig {
  readonly roles: RoleMap;
  readonly policy: PolicyConfig;
  readonly clients: ClientOrigins;
}

export { TOKEN_FORMATS, rolesSchema };
export type TokenFormat = (typeof TOKEN_FORMATS)[number];

export interface OidcConfig {
  /** The IdP issuer (Authelia: `https://auth.example.com`, no path). */
  readonly issuer: string;
  /** Castellan's own resource URL (RFC 8707/9728); tokens must name it in `aud`. */
  readonly resource: string;
  /** Castellan's confidential client at the IdP, used only to introspect and call userinfo. */
  readonly clientId: string;
  readonly clientSecret: string;
  readonly tokenFormat: TokenFormat;
  /** Where groups come from: the token (or introspection) claim, or the userinfo endpoint. */
  readonly groupsFrom: 'token' | 'userinfo';
  readonly groupsClaim: string;
  /** JWS algorithms accepted on JWT access tokens. */
  readonly algorithms: readonly string[];
  /** Upper bound for caching a verified token (it is never cached past its `exp`). */
  readonly cacheTtlSeconds: number;
  /** Plain-http issuers are refused unless loopback; set for labs on another host only. */
  readonly allowInsecureIssuer: boolean;
  /** Tokens whose `exp` lies further ahead than this are refused (a bound on stolen-token life). */
  readonly maxTokenLifetimeSeconds: number;
  /** Clock difference tolerated with the IdP: a token issued (`iat`) further in the future is refused. */
  readonly clockSkewSeconds: number;
}


/** Defaults: read never waits; change waits when an AI client (MCP) asks; destructive always waits. */
export const DEFAULT_REQUIRE_APPROVAL: Readonly<Record<Risk, readonly Origin[]>> = {
  read: [],
  change: ['mcp'],
  destructive: [...ORIGINS],
};

export const clientsSchema = z.record(z.string().min(1), z.enum(ORIGINS)).default({ ...DEFAULT_CLIENT_ORIGINS });

export const oidcSchema = z
  .object({
    issuer: z.url(),
    resource: z.url(),
    client_id: z.string().min(1),
    client_secret: z.string().min(8),
    token_format: z.enum(TOKEN_FORMATS).default('auto'),
    groups_from: z.enum(['token', 'userinfo']).default('token'),
    groups_claim: z.string().min(1).default('groups'),
    algorithms: z.array(z.string().min(2)).min(1).default(['RS256', 'ES256', 'EdDSA', 'PS256']),
    cache_ttl_seconds: z.number().int().min(0).max(300).default(30),
    allow_insecure_issuer: z.boolean().default(false),
    max_token_lifetime_seconds: z.number().int().min(60).default(24 * 3600),
    clock_skew_seconds: z.number().int().min(0).max(600).default(60),
  })
  .strict()
  .transform(
    (o): OidcConfig => ({
      issuer: o.issuer,
      resource: o.resource,
      clientId: o.client_id,
      clientSecret: o.client_secret,
      tokenFormat: o.token_format,
      groupsFrom: o.groups_from,
      groupsClaim: o.groups_claim,
      algorithms: o.algorithms,
      cacheTtlSeconds: o.cache_ttl_seconds,
      allowInsecureIssuer: o.allow_insecure_issuer,
      maxTokenLifetimeSeconds: o.max_token_lifetime_seconds,
      clockSkewSeconds: o.clock_skew_seconds,
    }),
  );

export function parseRoles(input: unknown): RoleMap {
  return rolesSchema.parse(input);
}

/** `policy` as written in castellan.yaml (config/schema.ts parses it) -> the policy engine's shape. */
export function parsePolicy(input: unknown = {}): PolicyConfig {
  return policyConfig(policySchema.parse(input));
}

export function parseOidc(input: unknown): OidcConfig {
  return oidcSchema.parse(input);
}

/** Convenience for tests and the lab: `{ roles, policy, clients }` from YAML-shaped input. */
export function parseAuthConfig(input: { roles?: unknown; policy?: unknown; clients?: unknown }): AuthConfig {
  return { roles: parseRoles(input.roles), policy: parsePolicy(input.policy ?? {}), clients: clientsSchema.parse(input.clients) };
}

/**
 * Adapters from the loaded settings (config/schema.ts: `auth.roles`, `policy`, `auth.oidc`),
 * typed structurally so this module does not depend on the whole settings tree. A
 * `requireApproval` absent there keeps the defaults above.
 */
export function authConfigFromSettings(settings: {
  readonly auth: { readonly roles: RoleMap; readonly clients?: ClientOrigins | undefined };
  readonly policy: PolicySettings;
}): AuthConfig {
  return { roles: settings.auth.roles, clients: settings.auth.clients ?? DEFAULT_CLIENT_ORIGINS, policy: policyConfig(settings.policy) };
}

function policyConfig(policy: PolicySettings): PolicyConfig {
  return {
    readOnly: policy.readOnly,
    approvalsRequired: policy.approvals.required,
    allowSelfApproval: policy.approvals.allowSelfApproval,
    requireApproval: Object.fromEntries(
      RISKS.map((risk) => [risk, policy.requireApproval[risk] ?? DEFAULT_REQUIRE_APPROVAL[risk]]),
    ) as Record<Risk, readonly Origin[]>,
    outputForOthers: policy.outputForOthers,
  };
}

/** `auth.oidc` from the settings plus its resolved client secret -> the verifier's config. */
export function oidcConfigFromSettings(
  oidc: {
    readonly issuer: string;
    readonly clientId: string;
    /** Expected `aud`: Castellan's resource URL. */
    readonly audience: string;
    readonly tokenFormat: TokenFormat;
    readonly groupsFrom: 'token' | 'userinfo';
  },
  clientSecret: string,
  overrides: Partial<Pick<OidcConfig, 'groupsClaim' | 'algorithms' | 'cacheTtlSeconds' | 'allowInsecureIssuer' | 'maxTokenLifetimeSeconds' | 'clockSkewSeconds'>> = {},
): OidcConfig {
  return parseOidc({
    issuer: oidc.issuer,
    resource: oidc.audience,
    client_id: oidc.clientId,
    client_secret: clientSecret,
    token_format: oidc.tokenFormat,
    groups_from: oidc.groupsFrom,
    ...(overrides.groupsClaim !== undefined ? { groups_claim: overrides.groupsClaim } : {}),
    ...(overrides.algorithms !== undefined ? { algorithms: [...overrides.algorithms] } : {}),
    ...(overrides.cacheTtlSeconds !== undefined ? { cache_ttl_seconds: overrides.cacheTtlSeconds } : {}),
    ...(overrides.allowInsecureIssuer !== undefined ? { allow_insecure_issuer: overrides.allowInsecureIssuer } : {}),
    ...(overrides.maxTokenLifetimeSeconds !== undefined ? { max_token_lifetime_seconds: overrides.maxTokenLifetimeSeconds } : {}),
    ...(overrides.clockSkewSeconds !== undefined ? { clock_skew_seconds: overrides.clockSkewSeconds } : {}),
  });
}

export type { Role, Origin, Risk };
