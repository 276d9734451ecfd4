import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { LogBatchRequestSchema, LogBridge, type LogRequest, LogService } from "./gen/log_service_pb.js";
import { type Attributes, type LogEntry, attributePairs, estimatedBytes, toLogRequest } from "./entry.js";
import { Level, type LevelName, parseLevel } from "./levels.js";
import { Backoff, isRetryable } from "./retry.js";

/** Messages held while the server is slow or away; past it new ones are dropped and counted. */
export const DEFAULT_MAX_BUFFERED_MESSAGES = 10_000;
/** Messages per `LogBatch` call: large enough to be cheap per message, small enough to stream. */
export const DEFAULT_MAX_BATCH_MESSAGES = 500;
/** grpcio refuses requests over 4 MiB; batches stay well below. */
export const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;
export const DEFAULT_FLUSH_INTERVAL_MS = 100;
export const DEFAULT_CALL_TIMEOUT_MS = 5000;
/** How long close() and flush() wait by default; like the other clients, never forever. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;

export interface LogClientOptions {
  /** A Connect transport; `createLogClient` in `log-server-client` / `/node` makes one. */
  transport: Transport;
  /** Defaults for the messages `log()` makes (`write()` sends entries as given). */
  loggerName?: string;
  serviceName?: string;
  hostname?: string;
  processId?: string | number;
  processName?: string;
  /** Attributes every `log()` message starts with. */
  attributes?: Attributes;
  /** Ask for `log-ack: durable`: a call succeeds once its messages are on disk. */
  durable?: boolean;
  maxBufferedMessages?: number;
  maxBatchMessages?: number;
  maxBatchBytes?: number;
  flushIntervalMs?: number;
  callTimeoutMs?: number;
  closeTimeoutMs?: number;
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * Told about each failed call, each refused batch and each time the buffer starts
   * dropping; the default writes one console.error line per kind.
   */
  onError?: (error: Error) => void;
  /** Called once by close(), e.g. to close the transport's connections. */
  dispose?: () => void;
}

/** close() or flush() ran out of time (or the server refused) with messages not delivered. */
export class UndeliveredError extends Error {
  override readonly name = "UndeliveredError";
  constructor(
    readonly undelivered: number,
    override readonly cause?: unknown,
  ) {
    super(
      `${undelivered} log message(s) not delivered` +
        (cause === undefined ? "" : `: ${cause instanceof Error ? cause.message : String(cause)}`),
    );
  }
}

export interface LogClientStats {
  /** Accepted by the server. */
  delivered: number;
  /** Waiting to be sent or being sent. */
  buffered: number;
  /** Not taken because the buffer was full or the client closed. */
  dropped: number;
  /** Refused by the server (bad request), so not resent. */
  refused: number;
}

/** ISO-8601 UTC as the server writes its own (`2026-12-01T10:00:00.123000+00:00`). */
export function isoTimestamp(date: Date): string {
  return date.toISOString().replace(/Z$/, "000+00:00");
}

/**
 * Where batches go, in the order tried when a call gets UNIMPLEMENTED (which means the call
 * did nothing): LogService as log_server serves it; the same methods as `logservice.LogBridge`,
 * all the original project's server serves; then one LogMessage per message, for a server
 * older than LogBatch, on either name.
 */
const ROUTES = [
  { bridge: false, batch: true },
  { bridge: true, batch: true },
  { bridge: false, batch: false },
  { bridge: true, batch: false },
] as const;
type Route = (typeof ROUTES)[number];
const routeAt = (index: number): Route => ROUTES[index] ?? ROUTES[0];

/** Timers of a logger must not keep a Node process alive by themselves. */
function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    unref(timer);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });


/**
 * A non-blocking logger: `log()` puts a message in a bounded buffer and returns; one sender
 * at a time sends what is buffered as `LogBatch` calls, in order, resending after
 * network failures with a capped exponential backoff. `flush()` and `close()` wait for the
 * buffer to drain, but never past their deadline.
 */
export class LogClient {
  private readonly services: { readonly service: Client<typeof LogService>; readonly bridge: Client<typeof LogBridge> };
  private readonly buffer: LogRequest[] = [];
  private readonly options: LogClientOptions;
  private readonly defaults: LogEntry;
  private readonly baseAttributes: { key: string; value: string }[];
  private readonly backoff: Backoff;
  private readonly stopping = new AbortController();
  private readonly waiters = new Set<() => void>();
  private readonly reported = new Set<string>();
  private sending: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closing: Promise<void> | undefined;
  private lastError: unknown;
  /** Messages ever taken in, and ever settled (delivered or refused), in buffer order. */
  private taken = 0;
  private settled = 0;
  private readonly counts = { delivered: 0, dropped: 0, refused: 0 };
  /** Index into ROUTES; it only moves forward. */
  private route = 0;
  /** Set once either service name answered a call: the client sticks to that name. */
  private answeredBridge: boolean | undefined;
  private unreportedRefusals = 0;
  /** Set from the first drop until a message fits again: one report per episode, not per message. */
  private dropping = false;

  constructor(options: LogClientOptions) {
    this.options = options;
    this.services = { service: createClient(LogService, options.transport), bridge: createClient(LogBridge, options.transport) };
    this.defaults = {
      loggerName: options.loggerName,
      serviceName: options.serviceName,
      hostname: options.hostname,
      processId: options.processId,
      processName: options.processName,
    };
    this.baseAttributes = attributePairs(options.attributes);
    this.backoff = new Backoff(options.backoff?.initialMs ?? 50, options.backoff?.maxMs ?? 2000);
  }

  /**
   * Log `message` at `level` with attributes (`fields`), stamped with the current time and
   * the client's defaults; `entry` sets any other field (`stackTrace`, `timestamp`, ...).
   */
  log(level: Level | LevelName | string, message: string, fields?: Attributes, entry?: LogEntry): void {
    const parsed = parseLevel(level);
    if (parsed === undefined) throw new TypeError(`unknown log level ${JSON.stringify(level)}`);
    const attributes = [...this.baseAttributes, ...attributePairs(fields), ...attributePairs(entry?.attributes)];
    const timestamp = isoTimestamp(new Date());
    this.enqueue(toLogRequest({ ...this.defaults, timestamp, ...entry, level: parsed, message, attributes }));
  }

  debug(message: string, fields?: Attributes): void {
    this.log(Level.DEBUG, message, fields);
  }

  info(message: string, fields?: Attributes): void {
    this.log(Level.INFO, message, fields);
  }

  warn(message: string, fields?: Attributes): void {
    this.log(Level.WARNING, message, fields);
  }

  error(message: string, fields?: Attributes): void {
    this.log(Level.ERROR, message, fields);
  }

  /** Send an entry exactly as given: no defaults, no timestamp (the server stamps an empty one). */
  write(entry: LogEntry): void {
    this.enqueue(toLogRequest(entry));
  }

  get stats(): LogClientStats {
    return { ...this.counts, buffered: this.buffer.length };
  }

  /**
   * Wait until every message taken before this call is delivered. Rejects with
   * UndeliveredError when `timeoutMs` passes first, or when the server refused messages
   * since the last flush (each refusal is reported once, by the next flush or close).
   */
  async flush(timeoutMs = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS): Promise<void> {
    const target = this.taken;
    this.kick();
    await this.settledUpTo(target, timeoutMs);
    const undelivered = target - this.settled + this.unreportedRefusals;
    this.unreportedRefusals = 0;
    if (undelivered > 0) throw new UndeliveredError(undelivered, this.lastError);
  }

  /**
   * Send what is buffered, then stop: within `timeoutMs` the call in flight is cancelled
   * and connections closed. Rejects with UndeliveredError naming what was left. Later
   * `log()` calls are dropped. Calling it again returns the first call's promise.
   */
  close(timeoutMs = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS): Promise<void> {
    this.closing ??= this.shutdown(timeoutMs);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    let failure: unknown;
    try {
      await this.flush(timeoutMs);
    } catch (error) {
      failure = error;
    }
    this.stopping.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.sending;
    this.options.dispose?.();
    if (this.buffer.length > 0 && !(failure instanceof UndeliveredError)) {
      failure = new UndeliveredError(this.buffer.length, this.lastError);
    }
    if (failure !== undefined) throw failure;
  }

  private enqueue(request: LogRequest): void {
    if (this.closing !== undefined) {
      this.counts.dropped += 1;
      return;
    }
    const limit = this.options.maxBufferedMessages ?? DEFAULT_MAX_BUFFERED_MESSAGES;
    if (this.buffer.length >= limit) {
      this.counts.dropped += 1;
      if (!this.dropping) {
        this.dropping = true;
        this.report("dropped", new Error(`log buffer full (${limit} messages): dropping new messages`));
      }
      return;
    }
    this.dropping = false;
    this.buffer.push(request);
    this.taken += 1;
    if (this.buffer.length >= (this.options.maxBatchMessages ?? DEFAULT_MAX_BATCH_MESSAGES)) {
      this.kick();
    } else if (this.timer === undefined && this.sending === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, this.options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS);
      unref(this.timer);
    }
  }

  /** Start the sender unless it runs already (it keeps going while there is something to send). */
  private kick(): void {
    if (this.sending !== undefined || this.stopping.signal.aborted || this.buffer.length === 0) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.sending = this.sendAll().finally(() => {
      this.sending = undefined;
      this.kick();
    });
  }

  private async sendAll(): Promise<void> {
    const signal = this.stopping.signal;
    while (this.buffer.length > 0 && !signal.aborted) {
      const count = this.nextBatchSize();
      const batch = this.buffer.slice(0, count);
      try {
        await this.send(batch, signal);
        this.counts.delivered += count;
        this.backoff.reset();
      } catch (error) {
        if (signal.aborted) return;
        this.lastError = error;
        if (isRetryable(error)) {
          this.report("retry", error);
          await sleep(this.backoff.next(), signal);
          continue;
        }
        this.counts.refused += count;
        this.unreportedRefusals += count;
        this.report("refused", error);
      }
      this.buffer.splice(0, count);
      this.settled += count;
      this.wake();
    }
  }

  private nextBatchSize(): number {
    const maxMessages = this.options.maxBatchMessages ?? DEFAULT_MAX_BATCH_MESSAGES;
    const maxBytes = this.options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    let count = 0;
    let bytes = 0;
    if (!routeAt(this.route).batch) return 1;
    while (count < this.buffer.length && count < maxMessages) {
      bytes += estimatedBytes(this.buffer[count] as LogRequest);
      if (count > 0 && bytes > maxBytes) break;
      count += 1;
    }
    return count;
  }

  private async send(batch: LogRequest[], signal: AbortSignal): Promise<void> {
    const options = {
      signal,
      timeoutMs: this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      headers: this.options.durable ? { "log-ack": "durable" } : undefined,
    };
    for (;;) {
      const route = routeAt(this.route);
      const service = route.bridge ? this.services.bridge : this.services.service;
      let response;
      try {
        response = route.batch
          ? await service.logBatch(create(LogBatchRequestSchema, { requests: batch }), options)
          : // nextBatchSize gave one message.
            await service.logMessage(batch[0] as LogRequest, options);
      } catch (error) {
        if (ConnectError.from(error).code !== Code.Unimplemented) throw error;
        const next = this.nextRoute();
        if (next === undefined) throw error;
        this.route = next;
        if (routeAt(next).batch) continue; // the same batch again, under the other name
        throw new ConnectError("LogBatch is not implemented: sending one message per call", Code.Aborted);
      }
      this.answeredBridge ??= route.bridge;
      if (!response.success) throw new ConnectError("the server answered success=false", Code.Unavailable);
      return;
    }
  }

  /** The route after an UNIMPLEMENTED one, keeping to the service name that has answered. */
  private nextRoute(): number | undefined {
    for (let next = this.route + 1; next < ROUTES.length; next++) {
      const bridge = routeAt(next).bridge;
      if (this.answeredBridge === undefined || this.answeredBridge === bridge) return next;
    }
    return undefined;
  }

  private settledUpTo(target: number, timeoutMs: number): Promise<void> {
    if (this.settled >= target) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.settled >= target) finish();
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private report(kind: string, error: unknown): void {
    const asError = error instanceof Error ? error : new Error(String(error));
    if (this.options.onError !== undefined) {
      this.options.onError(asError);
    } else if (!this.reported.has(kind)) {
      this.reported.add(kind);
      console.error(`log-server-client: ${asError.message}`);
    }
  }
}
