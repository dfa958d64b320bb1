// The step kinds a plan may use. Adding a kind: one module next to this file, one line here.
import { downloadKind, type DownloadAction } from './download.js';
import { etcdMemberKind, type EtcdMemberAction } from './etcd-member.js';
import { execKind, type ExecAction } from './exec.js';
import { gateKind, type GateAction } from './gate.js';
import { ipmiKind, type IpmiAction } from './ipmi.js';
import type { StepKind } from './kind.js';
import { pinHostKeyKind, type PinHostKeyAction } from './pin-host-key.js';
import { playbookKind, type PlaybookAction } from './playbook.js';
import { relayKind, type RelayAction } from './relay.js';
import { uploadKind, type UploadAction } from './upload.js';

/** What one step does. Pure data: argv arrays and paths, never shell strings. */
export type StepAction = ExecAction | UploadAction | DownloadAction | RelayAction | GateAction | PlaybookAction | PinHostKeyAction | IpmiAction | EtcdMemberAction;

const KINDS: { readonly [K in StepAction['kind']]: StepKind<Extract<StepAction, { kind: K }>> } = {
  exec: execKind,
  upload: uploadKind,
  download: downloadKind,
  relay: relayKind,
  gate: gateKind,
  playbook: playbookKind,
  pin_host_key: pinHostKeyKind,
  ipmi: ipmiKind,
  etcd_member: etcdMemberKind,
};

/** The kind module of an action (typed so a caller cannot mix an action with another kind). */
export function stepKind<A extends StepAction>(action: A): StepKind<A> {
  const kind = KINDS[action.kind] as unknown as StepKind<A> | undefined;
  if (!kind) throw new Error(`unknown step kind '${String((action as { kind: unknown }).kind)}'`);
  return kind;
}

export const STEP_KINDS: readonly string[] = Object.keys(KINDS);

export type { DownloadAction, EtcdMemberAction, ExecAction, GateAction, IpmiAction, PinHostKeyAction, PlaybookAction, RelayAction, UploadAction };
export type { ConditionArgs, ConditionDefinition, ExecRequestSpec, IpmiRequest, GateObservation, Observation, StepIO, StepKind, StepRun, Verdict } from './kind.js';
export { GENERIC_CONDITIONS, gateStep, type GateCheck, type GateSpec } from './gate.js';
