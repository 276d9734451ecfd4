/**
 * A winston transport: `new LogServerTransport({ address, loggerName })`. The info
 * object's `level` and `message` become the message's; `stack` (from `format.errors`)
 * its stack trace; every other field an attribute. `logger.end()` or `logger.close()`
 * sends what is buffered first ('finish' fires after).
 */
import TransportStream from "winston-transport";
import { type LogClient, type NodeClientOptions, createLogClient, parseLevel, Level } from "./node.js";

export interface LogServerTransportOptions extends NodeClientOptions, TransportStream.TransportStreamOptions {}

/** Where winston keeps the level before formats colour `info.level` (triple-beam's LEVEL). */
const LEVEL = Symbol.for("level");

/** Fields winston's formats add that are not attributes. */
const WINSTON_FIELDS = new Set(["level", "message", "stack"]);

export class LogServerTransport extends TransportStream {
  readonly client: LogClient;

  constructor(options: LogServerTransportOptions = {}) {
    const { level, silent, handleExceptions, handleRejections, format, ...clientOptions } = options;
    super({ level, silent, handleExceptions, handleRejections, format });
    this.client = createLogClient(clientOptions);
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    const attributes: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(info)) {
      if (!WINSTON_FIELDS.has(key)) attributes[key] = value;
    }
    const levelName = String(info[LEVEL] ?? info.level ?? "info");
    const stack = info.stack;
    this.client.log(
      parseLevel(levelName) ?? Level.INFO,
      String(info.message ?? ""),
      attributes,
      typeof stack === "string" ? { stackTrace: stack } : undefined,
    );
    next();
  }

  /** Called before 'finish' when the logger ends: send what is buffered. */
  override _final(callback: (error?: Error | null) => void): void {
    this.client.close().then(
      () => callback(),
      (error: unknown) => {
        console.error(`log-server-client/winston: ${(error as Error).message}`);
        callback();
      },
    );
  }

  override close(): void {
    void this.client.close().catch((error: unknown) => {
      console.error(`log-server-client/winston: ${(error as Error).message}`);
    });
  }
}

export default LogServerTransport;
