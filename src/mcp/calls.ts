// Tool calls in flight in this process, so `notifications/cancelled` can reach them. Over
// stateless Streamable HTTP every POST gets its own server instance, so the cancellation
// arrives at a different instance than the call it names; this registry is what joins them.
// Calls are keyed by the caller's subject as well as the JSON-RPC id: a caller can only
// cancel their own calls, whatever id they send.

export type RequestId = string | number;

interface Entry {
  readonly cancel: (reason: string) => void;
}

export class InFlightCalls {
  private readonly calls = new Map<string, Set<Entry>>();

  private static key(subject: string, requestId: RequestId): string {
    return `${subject}\u0000${typeof requestId}:${String(requestId)}`;
  }

  /** Track a call; returns the function that stops tracking it. */
  register(subject: string, requestId: RequestId, cancel: (reason: string) => void): () => void {
    const key = InFlightCalls.key(subject, requestId);
    const entry: Entry = { cancel };
    const set = this.calls.get(key) ?? new Set<Entry>();
    set.add(entry);
    this.calls.set(key, set);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.calls.get(key) === set) this.calls.delete(key);
    };
  }

  /** Cancel the caller's call(s) with this id; returns how many were told. */
  cancel(subject: string, requestId: RequestId, reason: string): number {
    const set = this.calls.get(InFlightCalls.key(subject, requestId));
    if (!set) return 0;
    for (const entry of [...set]) entry.cancel(reason);
    return set.size;
  }

  get size(): number {
    let n = 0;
    for (const set of this.calls.values()) n += set.size;
    return n;
  }
}
