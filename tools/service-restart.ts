import { serviceActionInput, serviceActionPlan } from './systemd.js';
import { defineTool } from './types.js';

export const serviceRestart = defineTool({
  name: 'service_restart',
  title: 'Restart a service',
  description:
    'Restart a systemd unit on each host (as root), all at once or rolling in batches. Mirrors `systemctl restart UNIT`.',
  risk: 'change',
  toolset: 'services',
  idempotent: true,
  input: serviceActionInput,
  plan: (input, ctx) => serviceActionPlan('service_restart', 'restart', input, ctx),
});
