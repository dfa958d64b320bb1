// oidc-provider 9 ships no type declarations (and @types/oidc-provider lags the major), so
// this declares exactly the surface src/lab/oidc.ts uses, typed narrowly. Add to it only
// what the lab needs; it is not a general typing of the library.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface AccountClaims {
    sub: string;
    [claim: string]: unknown;
  }

  export interface Account {
    accountId: string;
    claims(use: string, scope: string): AccountClaims | Promise<AccountClaims>;
  }

  export interface ResourceServerInfo {
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat: 'opaque' | 'jwt';
    jwt?: { sign?: { alg?: string; kid?: string } };
  }

  export interface Client {
    readonly clientId: string;
  }

  export interface TokenLike {
    readonly kind: string;
    readonly accountId?: string;
    readonly clientId?: string;
    readonly scope?: string;
  }

  export interface PromptDetails {
    readonly name: string;
    readonly reasons: string[];
    readonly details: {
      readonly missingOIDCScope?: string[];
      readonly missingOIDCClaims?: string[];
      readonly missingResourceScopes?: Record<string, string[]>;
    };
  }

  export interface Interaction {
    readonly uid: string;
    readonly prompt: PromptDetails;
    readonly params: Record<string, unknown>;
    readonly session?: { readonly accountId?: string };
    readonly grantId?: string;
  }

  export interface Grant {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export interface GrantConstructor {
    new (init: { accountId: string; clientId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  }

  export interface AccessToken {
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface AccessTokenConstructor {
    new (init: {
      accountId: string;
      client: Client;
      scope: string;
      gty?: string;
      expiresIn?: number;
      resourceServer?: ResourceServerInstance;
    }): AccessToken;
    find(value: string): Promise<AccessToken | undefined>;
  }

  export interface ResourceServerInstance {
    readonly audience?: string;
  }

  export interface ResourceServerConstructor {
    new (identifier: string, info: ResourceServerInfo): ResourceServerInstance;
  }

  export interface ClientConstructor {
    find(id: string): Promise<Client | undefined>;
  }

  export interface KoaLikeContext {
    readonly oidc?: unknown;
  }

  export type Configuration = Record<string, unknown>;

  export class Provider {
    constructor(issuer: string, configuration: Configuration);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    on(event: string, listener: (...args: unknown[]) => void): this;
    readonly Grant: GrantConstructor;
    readonly AccessToken: AccessTokenConstructor;
    readonly Client: ClientConstructor;
    readonly ResourceServer: ResourceServerConstructor;
  }

  export const errors: {
    InvalidTarget: new (description?: string) => Error;
  };

  export default Provider;
}
