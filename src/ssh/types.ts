// The SSH executor's vocabulary: host results (tools/host-result.ts) and the execution
// contracts the job layer declares (queues/execution.ts), gathered for the executor's modules.
export * from '../../tools/host-result.js';
export * from '../../queues/execution.js';
