// The shape of folded output (hosts with identical output grouped under one node set),
// shared by the job layer and every front end. Produced by src/fold.ts.
export interface FoldGroup {
  /** Node-set notation of the hosts, e.g. `node[01-03,07]`. */
  readonly nodeset: string;
  readonly hosts: readonly string[];
  readonly count: number;
  readonly status: string;
  readonly text: string;
}
