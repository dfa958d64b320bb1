// `castellan slack manifest`: a ready Slack app manifest for this server, so attaching a real
// workspace is "create app from manifest, install, copy two tokens". It asks for the scopes
// the front end uses and no more: `commands` (the slash command), `chat:write` (the job
// message, its edits, thread replies and ephemerals) and `app_mentions:read` (the hint when
// someone @-mentions the bot). Socket Mode needs no request URLs; HTTP mode points the slash
// command, interactivity and events at `<public_url>/slack/events`.
import { stringify } from 'yaml';
import { SLASH_COMMAND } from './commands.js';
import { SLACK_EVENTS_PATH } from './app.js';

export const SLACK_BOT_SCOPES = ['commands', 'chat:write', 'app_mentions:read'] as const;

export function slackManifest(options: { socketMode: boolean; publicUrl: string; name?: string }): string {
  const url = new URL(SLACK_EVENTS_PATH, options.publicUrl).href;
  const http = options.socketMode ? {} : { url };
  const manifest = {
    _metadata: { major_version: 1, minor_version: 1 },
    display_information: {
      name: options.name ?? 'Castellan',
      description: 'Typed, approved, audited cluster operations',
      long_description:
        'Castellan runs cluster operations (uptime, service restarts, rolling upgrades…) as the person who asked, after linking their Slack account to the team sign-in. Risky operations wait for Approve / Deny by someone allowed to approve; every job is audited.',
    },
    features: {
      bot_user: { display_name: options.name ?? 'Castellan', always_online: true },
      slash_commands: [
        {
          command: SLASH_COMMAND,
          ...http,
          description: 'Run a cluster tool as yourself',
          usage_hint: '<tool> <targets> [--param value]… | help | jobs | link',
          // Castellan parses the raw words itself, like the CLI.
          should_escape: false,
        },
      ],
    },
    oauth_config: { scopes: { bot: [...SLACK_BOT_SCOPES] } },
    settings: {
      event_subscriptions: { ...(options.socketMode ? {} : { request_url: url }), bot_events: ['app_mention'] },
      interactivity: { is_enabled: true, ...(options.socketMode ? {} : { request_url: url }) },
      org_deploy_enabled: false,
      socket_mode_enabled: options.socketMode,
      token_rotation_enabled: false,
    },
  };
  return `# Slack app manifest for Castellan (${options.socketMode ? 'Socket Mode' : `HTTP: ${url}`}).\n# https://api.slack.com/apps → Create New App → From a manifest → paste this.\n${stringify(manifest)}`;
}
