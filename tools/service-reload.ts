import { serviceActionInput, serviceActionPlan } from './systemd.js';
import { defineTool } from './types.js';

export const serviceReload = defineTool({
  name: 'service_reload',
  title: 'Reload a service',
  description:
    'Ask a systemd unit to reload its configuration on each host (as root), without a restart. Mirrors `systemctl reload UNIT`.',
  risk: 'change',
  toolset: 'services',
  idempotent: true,
  input: serviceActionInput,
  plan: (input, ctx) => serviceActionPlan('service_reload', 'reload', input, ctx),
});
