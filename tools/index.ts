// The catalogue: every operation Castellan offers, in the order front ends list them.
// Adding an operation = one new file in tools/ plus one line here.
import { bootEnvironmentActivate } from './boot-environment-activate.js';
import { bootEnvironmentCreate } from './boot-environment-create.js';
import { bootEnvironmentDestroy } from './boot-environment-destroy.js';
import { bootEnvironments } from './boot-environments.js';
import { ansiblePlaybook } from './ansible-playbook.js';
import { blueGreenUpgrade } from './blue-green-upgrade.js';
import { bmcPower } from './bmc-power.js';
import { certExpiry } from './cert-expiry.js';
import { copyFile } from './copy-file.js';
import { diskUsage } from './disk-usage.js';
import { etcdHealth } from './etcd-health.js';
import { exec } from './exec.js';
import { journal } from './journal.js';
import { k8sCordon } from './k8s-cordon.js';
import { k8sDrain } from './k8s-drain.js';
import { k8sNodes } from './k8s-nodes.js';
import { k8sUncordon } from './k8s-uncordon.js';
import { listGroups } from './list-groups.js';
import { listNodes } from './list-nodes.js';
import { nodeExpand } from './node-expand.js';
import { ping } from './ping.js';
import { reboot } from './reboot.js';
import { rollingUpgrade } from './rolling-upgrade.js';
import { resourceUsage } from './resource-usage.js';
import { runScript } from './run-script.js';
import { serviceReload } from './service-reload.js';
import { serviceRestart } from './service-restart.js';
import { serviceStatus } from './service-status.js';
import { shutdown } from './shutdown.js';
import { uptime } from './uptime.js';
import { wireguardMesh } from './wireguard-mesh.js';
import { wireguardStatus } from './wireguard-status.js';
import type { AnyTool } from './registry.js';
import { findTool } from './registry.js';

export const catalogue: readonly AnyTool[] = [
  // read
  ping,
  uptime,
  resourceUsage,
  serviceStatus,
  journal,
  diskUsage,
  listNodes,
  listGroups,
  wireguardStatus,
  wireguardMesh,
  etcdHealth,
  bmcPower,
  certExpiry,
  k8sNodes,
  bootEnvironments,
  // change
  serviceRestart,
  serviceReload,
  copyFile,
  runScript,
  k8sCordon,
  k8sUncordon,
  bootEnvironmentCreate,
  ansiblePlaybook,
  // destructive
  exec,
  reboot,
  shutdown,
  k8sDrain,
  bootEnvironmentActivate,
  bootEnvironmentDestroy,
  rollingUpgrade,
  blueGreenUpgrade,
  nodeExpand,
];

/** The tool called `name`; an unknown name throws UnknownToolError suggesting close names. */
export function getTool(name: string): AnyTool {
  return findTool(catalogue, name);
}

export {
  annotations,
  findTool,
  formatIssue,
  formatIssues,
  inputJsonSchema,
  InvalidInputError,
  outputJsonSchema,
  UnknownToolError,
  validateInput,
} from './registry.js';
export type { AnyTool, InputIssue, ToolAnnotations, ValidationResult } from './registry.js';
export { parseToolArgs, parseToolWords } from './cli-args.js';
export { DEFAULT_APPROVAL, helpText } from './help.js';
export { defineTool, RISKS, ToolInputError } from './types.js';
export type { Plan, PlanBatch, PlanContext, PlanStep, Risk, StepAction, StepResults, ToolDefinition } from './types.js';
