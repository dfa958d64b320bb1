// Who the CLI acts as: `castellan login` / `logout` / `whoami` / `token`, and the token the
// remote mode sends ($CASTELLAN_TOKEN, --token-file, else the stored login, refreshed).
import type { Command } from 'commander';
import { CastellanError } from '../../config/errors.js';
import { loadLogin, removeLogin, serverKey, type StoredLogin } from './credentials.js';
import { DEFAULT_CLI_CLIENT_ID, login, revokeStored, storedAccessToken } from './login.js';
import { openLocal } from './local.js';
import { RemoteClient, TOKEN_ENV, remoteToken } from './remote.js';

export interface AccountContext {
  globals(): { config?: string; server?: string; tokenFile?: string; json?: boolean; verbose?: boolean };
}

export function serverOf(g: { server?: string | undefined }): string | undefined {
  return g.server ?? process.env.CASTELLAN_SERVER;
}

/** The access token for remote mode, in order: $CASTELLAN_TOKEN, --token-file, `castellan login`. */
export async function tokenFor(server: string, tokenFile: string | undefined): Promise<string> {
  if (process.env[TOKEN_ENV]?.trim() || tokenFile !== undefined) return remoteToken({ tokenFile });
  const stored = await storedAccessToken(server);
  if (stored !== undefined) return stored;
  const key = serverKey(server);
  throw new CastellanError('unauthenticated', `not logged in to ${key}: run castellan login --server ${key} (or set ${TOKEN_ENV})`);
}

function requireServer(g: { server?: string | undefined }, verb: string): string {
  const server = serverOf(g);
  if (server === undefined) throw new CastellanError('invalid_input', `${verb}: which server? pass --server URL (or set CASTELLAN_SERVER), e.g. castellan ${verb} --server http://127.0.0.1:8080`);
  return server;
}

function expiryText(stored: StoredLogin | undefined): string {
  if (stored?.expiresAt === undefined) return stored ? 'unknown (the issuer did not say)' : 'not from castellan login';
  const left = stored.expiresAt - Math.floor(Date.now() / 1000);
  const when = new Date(stored.expiresAt * 1000).toISOString();
  const refresh = stored.refreshToken !== undefined ? '; refreshed automatically' : '; no refresh token: log in again after that';
  return left > 0 ? `${when} (in ${Math.ceil(left / 60)} min${refresh})` : `${when} (expired${refresh})`;
}

export function register(program: Command, ctx: AccountContext): void {
  program
    .command('login')
    .description('Log in to a Castellan server through its OIDC issuer (browser with PKCE, or --device); tokens are stored 0600 under ~/.config/castellan')
    .option('--client-id <id>', 'the OIDC client registered for the CLI', DEFAULT_CLI_CLIENT_ID)
    .option('--device', 'use the device authorization grant (log in on another device)')
    .option('--callback-port <port>', 'fixed loopback port for the browser redirect (default: any free port)')
    .option('--no-browser', 'only print the URL, do not try to open a browser')
    .action(async (opts: { clientId: string; device?: boolean; callbackPort?: string; browser: boolean }) => {
      const server = requireServer(ctx.globals(), 'login');
      const callbackPort = opts.callbackPort !== undefined ? Number(opts.callbackPort) : undefined;
      if (callbackPort !== undefined && (!Number.isInteger(callbackPort) || callbackPort < 1 || callbackPort > 65535)) {
        throw new CastellanError('invalid_input', '--callback-port: expected a TCP port');
      }
      const { login: stored, file } = await login({
        server,
        clientId: opts.clientId,
        device: opts.device,
        callbackPort,
        openBrowser: opts.browser,
        say: (line) => process.stderr.write(`${line}\n`),
      });
      const me = await new RemoteClient({ server, token: stored.accessToken }).whoami();
      process.stdout.write(`logged in to ${stored.server} as ${me.subject} (${me.roles.join(', ') || 'no role'}); token stored in ${file}\n`);
    });

  program
    .command('logout')
    .description('Forget the stored login for a server (and revoke its refresh token at the issuer)')
    .action(async () => {
      const server = requireServer(ctx.globals(), 'logout');
      const stored = await loadLogin(server);
      if (stored === undefined) {
        process.stdout.write(`not logged in to ${serverKey(server)}\n`);
        return;
      }
      const revoked = await revokeStored(stored);
      await removeLogin(server);
      process.stdout.write(`logged out of ${stored.server}${revoked ? ' (refresh token revoked)' : ''}\n`);
    });

  program
    .command('whoami')
    .description('Who Castellan sees: subject, groups, roles and token expiry (remote), or the local identity from the config')
    .action(async () => {
      const g = ctx.globals();
      const server = serverOf(g);
      if (server === undefined) {
        const { client } = await openLocal(g.config, Boolean(g.verbose));
        const me = client.requester;
        await client.close();
        const shown = { subject: me.subject, display_name: me.displayName, groups: me.groups, roles: me.roles, origin: me.origin, expires: null, mode: 'local' };
        if (g.json) process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
        else process.stdout.write(table([['subject', me.subject], ['name', me.displayName], ['groups', me.groups.join(', ') || '(none)'], ['roles', me.roles.join(', ') || '(none)'], ['mode', 'local: auth.local_identity of the config, no token']]));
        return;
      }
      const me = await new RemoteClient({ server, token: await tokenFor(server, g.tokenFile) }).whoami();
      const stored = process.env[TOKEN_ENV] || g.tokenFile ? undefined : await loadLogin(server);
      if (g.json) {
        process.stdout.write(JSON.stringify({ ...me, server: serverKey(server), expires_at: stored?.expiresAt !== undefined ? new Date(stored.expiresAt * 1000).toISOString() : null }, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        table([
          ['subject', me.subject],
          ['name', me.display_name],
          ['groups', me.groups.join(', ') || '(none)'],
          ['roles', me.roles.join(', ') || '(none: ask an admin to map one of your groups in auth.roles)'],
          ['server', `${serverKey(server)} (origin ${me.origin})`],
          ['expires', expiryText(stored)],
        ]),
      );
    });

  program
    .command('token')
    .description('Print a valid access token for the server (refreshed if needed), for header-based clients: Authorization: Bearer $(castellan token)')
    .action(async () => {
      const g = ctx.globals();
      const server = requireServer(g, 'token');
      process.stdout.write(`${await tokenFor(server, g.tokenFile)}\n`);
    });
}

function table(rows: readonly (readonly [string, string])[]): string {
  return rows.map(([k, v]) => `${k.padEnd(8)} ${v}`).join('\n') + '\n';
}


