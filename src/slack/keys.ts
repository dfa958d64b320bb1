// Redis keys of the Slack front end, under Castellan's prefix. Everything Slack needs to
// remember lives here, never in process memory, so any server instance can handle any
// command or button and a restart loses nothing.

export interface SlackKeys {
  /** (team, user) → linked identity (hash-free JSON string, with TTL). */
  link(team: string, user: string): string;
  /** Pending link flow: single use, minutes. */
  linkState(state: string): string;
  /** Messages showing a job (request message, approval card): hash kind → JSON. */
  messages(jobId: string): string;
  /** Who is posting a job's message of one kind right now (post-once.ts). */
  postClaim(jobId: string, kind: string): string;
  /** Jobs whose Slack messages still change. */
  watching(): string;
  /** The notifier instance that owns a watched job's messages (the only one that edits them). */
  jobOwner(jobId: string): string;
  /** A notifier instance's heartbeat; its jobs are taken over once it expires. */
  notifierAlive(instance: string): string;
  /** Until when (epoch ms) Slack asked us to stop calling (Retry-After). */
  pauseUntil(): string;
  /** Slash commands and Approve clicks acknowledged and not yet handled: hash key → entry JSON (inbox.ts). */
  commands(): string;
  /** When each recorded entry was last taken up (epoch ms): sorted set key → time. */
  commandClaims(): string;
}

export function slackKeys(prefix: string): SlackKeys {
  const p = `${prefix}:slack`;
  return {
    link: (team, user) => `${p}:link:${team}:${user}`,
    linkState: (state) => `${p}:link-state:${state}`,
    messages: (jobId) => `${p}:messages:${jobId}`,
    postClaim: (jobId, kind) => `${p}:posting:${jobId}:${kind}`,
    watching: () => `${p}:watching`,
    jobOwner: (jobId) => `${p}:owner:${jobId}`,
    notifierAlive: (instance) => `${p}:alive:${instance}`,
    pauseUntil: () => `${p}:pause-until`,
    commands: () => `${p}:commands`,
    commandClaims: () => `${p}:command-claims`,
  };
}
