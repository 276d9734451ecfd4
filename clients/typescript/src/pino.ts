/**
 * A pino transport: `pino.transport({ target: "log-server-client/pino", options })` (in
 * pino's worker thread) or `pino(await logServerTransport(options))` in-process. pino's own
 * fields become the message's (level, time, msg, name, pid, hostname, err's stack); every
 * other field of the log object becomes an attribute. Ending the stream (pino does at exit)
 * sends what is buffered before it closes.
 */
import build from "pino-abstract-transport";
import { type NodeClientOptions, createLogClient, isoTimestamp, levelFromPino } from "./node.js";

export type PinoTransportOptions = NodeClientOptions;

/** Fields pino writes itself; they map onto the protocol's fields, not attributes. */
const PINO_FIELDS = new Set(["level", "time", "msg", "pid", "hostname", "name", "v"]);

type PinoObject = Record<string, unknown> & { level?: number; time?: number; msg?: unknown };

export default async function logServerTransport(options: PinoTransportOptions = {}) {
  const client = createLogClient(options);
  return build(
    async (source: AsyncIterable<PinoObject>) => {
      for await (const object of source) {
        const attributes: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(object)) {
          if (!PINO_FIELDS.has(key) && key !== "err") attributes[key] = value;
        }
        const err = object.err as { stack?: unknown; message?: unknown } | undefined;
        const message = object.msg ?? (typeof err?.message === "string" ? err.message : "");
        client.log(levelFromPino(object.level ?? 30), String(message), attributes, {
          ...(typeof object.time === "number" ? { timestamp: isoTimestamp(new Date(object.time)) } : {}),
          ...(typeof object.name === "string" ? { loggerName: object.name } : {}),
          ...(object.pid !== undefined ? { processId: String(object.pid) } : {}),
          ...(typeof object.hostname === "string" ? { hostname: object.hostname } : {}),
          ...(typeof err?.stack === "string" ? { stackTrace: err.stack } : {}),
        });
      }
    },
    {
      async close() {
        try {
          await client.close();
        } catch (error) {
          console.error(`log-server-client/pino: ${(error as Error).message}`);
        }
      },
    },
  );
}

export { logServerTransport };
