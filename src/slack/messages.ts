// Slack messages that are not a job: ephemeral answers, the link prompt, the Deny reason
// modal. Jobs are drawn by the shared renderer (src/present/render/slack.ts) from the job view.
import { code, section, type SlackMessage } from '../present/render/slack.js';

export { code, plain, type SlackMessage } from '../present/render/slack.js';

export const ACTION_LINK = 'castellan_link';
export const VIEW_DENY = 'castellan_deny_reason';

export function ephemeral(text: string): SlackMessage {
  return { text: text.replace(/[*`]/g, '').slice(0, 300), blocks: [section(text)] };
}

export function linkPrompt(url: string, why: string): SlackMessage {
  return {
    text: `${why} Link your Slack account to your Castellan identity: ${url}`,
    blocks: [
      section(`:link: ${why}\nCastellan runs everything as the person who asked, so link your Slack account to your sign-in first. The link is yours alone and expires in 10 minutes.`),
      { type: 'actions', elements: [{ type: 'button', action_id: ACTION_LINK, url, style: 'primary', text: { type: 'plain_text', text: 'Link your account' } }] },
    ],
  };
}

export function denyReasonModal(jobId: string, tool: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: VIEW_DENY,
    private_metadata: jobId,
    title: { type: 'plain_text', text: 'Deny this run' },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Back' },
    blocks: [
      section(`Deny ${code(tool)} · job ${code(jobId)}? The requester sees your reason.`),
      { type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Reason' }, element: { type: 'plain_text_input', action_id: 'reason', multiline: true, max_length: 500 } },
    ],
  };
}
