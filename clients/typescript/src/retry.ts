import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Should a failed call be sent again? Yes when the server was unreachable, busy, slow or
 * stopping (a server that shuts down cancels the calls it still holds); no when it refused
 * the request itself (resending the same bytes would fail again). The client's own
 * cancellation is checked before this is asked.
 */
export function isRetryable(error: unknown): boolean {
  const code = ConnectError.from(error).code;
  return (
    code === Code.Unavailable ||
    code === Code.Canceled ||
    code === Code.DeadlineExceeded ||
    code === Code.ResourceExhausted ||
    code === Code.Aborted ||
    code === Code.Unknown ||
    code === Code.Internal
  );
}

/** How long to wait before the next try: exponential, capped, reset by a success. */
export class Backoff {
  private nextMs: number;

  constructor(
    readonly initialMs = 50,
    readonly maxMs = 2000,
    readonly factor = 2,
  ) {
    this.nextMs = initialMs;
  }

  next(): number {
    const delay = this.nextMs;
    this.nextMs = Math.min(this.maxMs, this.nextMs * this.factor);
    return delay;
  }

  reset(): void {
    this.nextMs = this.initialMs;
  }
}
