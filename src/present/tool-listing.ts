// The tool catalogue as a caller may see it (the HTTP API's /tools and the dashboard's run form):
// the tools their roles may run, with schemas and whether their origin's requests wait for approval.
import { visibleRisks } from '../../auth/policy.js';
import type { Identity, Origin } from '../../auth/types.js';
import { annotations, inputJsonSchema, outputJsonSchema, type AnyTool } from '../../tools/registry.js';
import type { Runtime } from '../runtime.js';

/** What a caller may see of the catalogue: the tools their roles may run, with schemas. */
export function toolListing(tools: readonly AnyTool[], identity: Identity, runtime: Runtime, origin: Origin): Array<Record<string, unknown>> {
  const risks = new Set(visibleRisks(identity, runtime.auth));
  return tools
    .filter((tool) => risks.has(tool.risk))
    .map((tool) => {
      const output = outputJsonSchema(tool);
      return {
        name: tool.name,
        title: tool.title,
        description: tool.description,
        risk: tool.risk,
        approval_required: runtime.auth.policy.requireApproval[tool.risk].includes(origin),
        annotations: annotations(tool),
        input_schema: inputJsonSchema(tool),
        ...(output !== undefined ? { output_schema: output } : {}),
      };
    });
}
