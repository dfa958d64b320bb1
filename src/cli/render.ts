// Exit codes that reflect a job's outcome. The text itself comes from src/present/render/text.ts,
// the same for local and remote mode.
import type { JobState } from '../../queues/states.js';

/** Exit codes: 0 all ok; 1 some host not ok; 2 the job did not run to the end; 3 still pending. */
export function exitCodeFor(state: JobState): number {
  switch (state) {
    case 'succeeded':
      return 0;
    case 'failed':
    case 'partially_failed':
      return 1;
    case 'cancelled':
    case 'denied':
    case 'expired':
    case 'interrupted':
      return 2;
    case 'awaiting_approval':
    case 'queued':
    case 'waiting_window':
    case 'running':
      return 3;
  }
}
