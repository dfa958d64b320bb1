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
  /** Per-job notifier state: event cursor, progress counters, render fingerprints. */
  watch(jobId: string): string;
  /** Jobs whose Slack messages still change. */
  watching(): string;
  /** A job already looked at by the notifier (so it is posted once). */
  known(jobId: string): string;
  /** Where the notifier's scan of the job index stands (epoch ms). */
  feedPosition(): string;
  /** Lease of the one notifier that writes to Slack. */
  notifierLease(): string;
  /** Until when (epoch ms) Slack asked us to stop calling (Retry-After). */
  pauseUntil(): string;
}

export function slackKeys(prefix: string): SlackKeys {
  const p = `${prefix}:slack`;
  return {
    link: (team, user) => `${p}:link:${team}:${user}`,
    linkState: (state) => `${p}:link-state:${state}`,
    messages: (jobId) => `${p}:messages:${jobId}`,
    watch: (jobId) => `${p}:watch:${jobId}`,
    watching: () => `${p}:watching`,
    known: (jobId) => `${p}:known:${jobId}`,
    feedPosition: () => `${p}:feed-position`,
    notifierLease: () => `${p}:notifier-lease`,
    pauseUntil: () => `${p}:pause-until`,
  };
}
