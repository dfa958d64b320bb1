// `/castellan …`: translate a slash command into the job layer's calls. Tool words go through
// the same tool-derived parser as the CLI (tools/cli-args.ts), so parameters are never
// declared twice; policy, planning and validation happen below, in the job service. Answers
// to the person are ephemeral; the job's own channel message is the notifier's.
import type { AuthConfig } from '../../auth/settings.js';
import type { Requester } from '../../auth/types.js';
import type { JobService } from '../../queues/service.js';
import { JOB_STATES, type JobState } from '../../queues/states.js';
import { helpText } from '../../tools/help.js';
import { parseToolWords } from '../../tools/cli-args.js';
import type { AnyTool } from '../../tools/registry.js';
import { CastellanError, errorMessage } from '../../config/errors.js';
import type { Logger } from '../log.js';
import { jobView, viewOfJob, type ApprovalPlaces } from '../present/job-view.js';
import { code, codeBlock, plain, slackJobLine, slackJobMessage, type SlackMessage } from '../present/render/slack.js';
import { linkUrl } from './link-page.js';
import type { SlackLinks } from './links.js';
import { ephemeral, linkPrompt } from './messages.js';
import { splitWords, WordsError } from './words.js';

export const SLASH_COMMAND = '/castellan';

export interface SlashRequest {
  readonly team: string;
  readonly user: string;
  readonly channel: string;
  /** Slack's id of this invocation, the same on every redelivery: the idempotency key. */
  readonly triggerId: string;
  readonly text: string;
}

export interface SlashDeps {
  readonly service: JobService;
  readonly tools: () => readonly AnyTool[];
  readonly auth: AuthConfig;
  readonly links: SlackLinks;
  readonly publicUrl: string;
  readonly channels: readonly string[];
  /** Where approval can be given (for the job views shown). */
  readonly places: ApprovalPlaces;
  /** A job was just submitted: the notifier starts on its message without waiting for the feed. */
  readonly onSubmitted?: ((jobId: string) => Promise<void>) | undefined;
  readonly logger: Logger;
}

const VERBS = ['help', 'jobs', 'job', 'approve', 'deny', 'cancel', 'link', 'unlink', 'whoami'] as const;

/** Handle one slash command; `reply` sends an ephemeral answer to the person who typed it. */
export async function handleSlash(deps: SlashDeps, request: SlashRequest, reply: (message: SlackMessage) => Promise<void>): Promise<void> {
  try {
    const answer = await dispatch(deps, request);
    if (answer) await reply(answer);
  } catch (error) {
    await reply(errorReply(error));
    if (!(error instanceof CastellanError) && !(error instanceof WordsError)) {
      deps.logger.warn({ err: errorMessage(error), team: request.team, slackUser: request.user }, 'Slack command failed');
    }
  }
}

export function errorReply(error: unknown): SlackMessage {
  if (error instanceof WordsError) return ephemeral(`:warning: *command line*: ${plain(error.message)}`);
  if (error instanceof CastellanError) {
    const field = error.field !== undefined && error.field !== '' ? `*${plain(error.field)}*: ` : '';
    return ephemeral(`:warning: ${field}${plain(error.message)}`);
  }
  return ephemeral(`:warning: Castellan could not do that: ${plain(errorMessage(error))}`);
}

async function dispatch(deps: SlashDeps, request: SlashRequest): Promise<SlackMessage | undefined> {
  const words = splitWords(request.text);
  const verb = (words[0] ?? 'help').toLowerCase();
  const rest = words.slice(1);

  if (deps.channels.length > 0 && !deps.channels.includes(request.channel) && verb !== 'link' && verb !== 'help') {
    return ephemeral(`:no_entry: Castellan does not take commands in this channel. Use one of: ${deps.channels.map((c) => `<#${c}>`).join(', ')} (slack.channels).`);
  }
  if (verb === 'help' && rest.length === 0) return help(deps, request);
  if (verb === 'help') return ephemeral(codeBlock(helpText(tool(deps, rest[0] ?? ''), SLASH_COMMAND)));
  if (verb === 'link') return link(deps, request, 'Link your Slack account to Castellan.');
  if (verb === 'unlink') {
    const removed = await deps.links.remove(request.team, request.user);
    return ephemeral(removed ? ':wave: Unlinked. Castellan will ask you to link again before acting for you.' : 'You were not linked.');
  }

  const who = await deps.links.lookup(request.team, request.user);
  if (who.kind === 'unlinked') return link(deps, request, 'You are not linked yet.');
  if (who.kind === 'expired') return link(deps, request, `${who.reason[0]?.toUpperCase() ?? ''}${who.reason.slice(1)}.`);
  const requester = who.requester;

  switch (verb) {
    case 'whoami':
      return ephemeral(
        `You are ${plain(requester.displayName)} (${code(requester.subject)}) · groups ${requester.groups.map(code).join(' ') || 'none'} · roles ${requester.roles.join(', ') || '*none*'} · linked ${new Date(who.link.linkedAt).toISOString().slice(0, 16)} UTC`,
      );
    case 'jobs':
      return jobs(deps, requester, rest);
    case 'job': {
      const job = await deps.service.get(needId(rest), requester);
      const view = slackJobMessage(await viewOfJob(deps.service, job, requester, deps.places), 'request', deps.publicUrl);
      // Buttons belong on the shared card; the ephemeral copy only shows.
      return { text: view.text, blocks: view.blocks.filter((b) => b.type !== 'actions') };
    }
    case 'approve':
    case 'deny':
    case 'cancel': {
      const id = needId(rest);
      const reason = rest.slice(1).join(' ') || undefined;
      const via = { kind: 'slack', channel: request.channel, user: request.user, team: request.team } as const;
      const job =
        verb === 'approve'
          ? await deps.service.approve(id, requester, reason, via)
          : verb === 'deny'
            ? await deps.service.deny(id, requester, reason, via)
            : await deps.service.cancel(id, requester, reason, via);
      return ephemeral(`:ok_hand: ${verb === 'approve' ? 'Approval recorded' : verb === 'deny' ? 'Denied' : 'Cancel requested'} · job ${code(job.id)} is now ${job.state.replaceAll('_', ' ')}.`);
    }
    default:
      return runTool(deps, request, requester, words);
  }
}

function tool(deps: SlashDeps, name: string): AnyTool {
  // The job service's lookup: one "unknown tool, did you mean" message for every front end.
  return deps.service.tool(name.replaceAll('-', '_'));
}

async function runTool(deps: SlashDeps, request: SlashRequest, requester: Requester, words: readonly string[]): Promise<SlackMessage | undefined> {
  const name = words[0] ?? '';
  const definition = tool(deps, name);
  const parsed = parseToolWords(definition, words.slice(1));
  if (!parsed.ok) {
    throw new CastellanError('invalid_input', `${parsed.message} (see \`${SLASH_COMMAND} help ${definition.name}\`)`, parsed.issues[0]?.field);
  }
  const submitted = await deps.service.submit({
    tool: definition.name,
    input: parsed.raw,
    requester,
    replyTo: { kind: 'slack', channel: request.channel, user: request.user, team: request.team },
    // Slack redelivers a command (HTTP retry, Socket Mode redelivery) with the same trigger_id.
    idempotencyKey: `slack:${request.team}:${request.triggerId}`.replace(/[^A-Za-z0-9._:@-]/g, '_').slice(0, 200),
  });
  // A redelivered or recovered command: the job exists; make sure its message does too.
  await deps.onSubmitted?.(submitted.job.id);
  if (submitted.duplicate) return undefined;
  deps.logger.info({ jobId: submitted.job.id, tool: definition.name, team: request.team, slackUser: request.user, channel: request.channel }, 'Slack command queued a job');
  return undefined;
}

async function jobs(deps: SlashDeps, requester: Requester, rest: readonly string[]): Promise<SlackMessage> {
  const state = rest[0];
  if (state !== undefined && !(JOB_STATES as readonly string[]).includes(state)) {
    throw new CastellanError('invalid_input', `unknown state ${code(state)}; states: ${JOB_STATES.join(', ')}`, 'state');
  }
  const list = await deps.service.list(requester, { limit: 15, state: state as JobState | undefined });
  if (list.length === 0) return ephemeral('No jobs yet.');
  return ephemeral(list.map((job) => slackJobLine(jobView(job, { places: deps.places }))).join('\n'));
}

function help(deps: SlashDeps, request: SlashRequest): SlackMessage {
  void request;
  const tools = deps.tools();
  const lines = tools.map((t) => `${code(t.name)} · ${t.risk} · ${plain(t.title)}`);
  return ephemeral(
    [
      `*${SLASH_COMMAND} <tool> <targets> [--param value]…* runs a tool as you (the same words as the CLI).`,
      `*${SLASH_COMMAND} help <tool>* · *jobs [state]* · *job <id>* · *approve|deny|cancel <id> [reason]* · *link* · *unlink* · *whoami*`,
      '',
      ...lines,
      deps.auth.policy.readOnly ? '\n_Castellan is read-only (policy.read_only): only read tools run._' : '',
    ].join('\n'),
  );
}

async function link(deps: SlashDeps, request: SlashRequest, why: string): Promise<SlackMessage> {
  if (!deps.links.configured) return ephemeral(':no_entry: Linking needs auth.oidc in castellan.yaml; ask the Castellan admin.');
  const state = await deps.links.begin(request.team, request.user, request.channel);
  return linkPrompt(linkUrl(deps.publicUrl, state), why);
}

function needId(rest: readonly string[]): string {
  const id = rest[0];
  if (id === undefined) throw new CastellanError('invalid_input', `give a job id (see \`${SLASH_COMMAND} jobs\`)`, 'job_id');
  return id;
}

export const SLASH_VERBS: readonly string[] = VERBS;
