import { create } from "@bufbuild/protobuf";
import { type LogRequest, LogRequestSchema } from "./gen/log_service_pb.js";
import { Level, parseLevel } from "./levels.js";

/** Attributes as an object (`{ user: "ann", tries: 3 }`, in key order) or as pairs. */
export type Attributes =
  | Readonly<Record<string, unknown>>
  | ReadonlyArray<{ readonly key: string; readonly value: string }>;

/** One message with every field of the protocol, each optional (absent = empty). */
export interface LogEntry {
  timestamp?: string;
  hostname?: string;
  loggerName?: string;
  module?: string;
  level?: Level | string;
  filename?: string;
  functionName?: string;
  lineNumber?: string | number;
  message?: string;
  pathName?: string;
  processId?: string | number;
  processName?: string;
  threadId?: string | number;
  threadName?: string;
  serviceName?: string;
  stackTrace?: string;
  attributes?: Attributes;
}

/** Values are text on the wire: strings go as they are, the rest as JSON where it can. */
export function attributeValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  if (value === null || value === undefined) return String(value);
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Pairs in order; an object's undefined values are left out, as JSON would. */
export function attributePairs(attributes: Attributes | undefined): { key: string; value: string }[] {
  if (attributes === undefined) return [];
  if (Array.isArray(attributes)) {
    return attributes.map(({ key, value }) => ({ key: String(key), value: String(value) }));
  }
  const pairs: { key: string; value: string }[] = [];
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined) pairs.push({ key, value: attributeValue(value) });
  }
  return pairs;
}

/** The protobuf message for an entry, every field exactly as given. */
export function toLogRequest(entry: LogEntry): LogRequest {
  let level = Level.NOTSET;
  if (entry.level !== undefined) {
    const parsed = parseLevel(entry.level);
    if (parsed === undefined) throw new TypeError(`unknown log level ${JSON.stringify(entry.level)}`);
    level = parsed;
  }
  return create(LogRequestSchema, {
    timestamp: entry.timestamp ?? "",
    hostname: entry.hostname ?? "",
    loggerName: entry.loggerName ?? "",
    module: entry.module ?? "",
    level,
    filename: entry.filename ?? "",
    functionName: entry.functionName ?? "",
    lineNumber: entry.lineNumber === undefined ? "" : String(entry.lineNumber),
    message: entry.message ?? "",
    pathName: entry.pathName ?? "",
    processId: entry.processId === undefined ? "" : String(entry.processId),
    processName: entry.processName ?? "",
    threadId: entry.threadId === undefined ? "" : String(entry.threadId),
    threadName: entry.threadName ?? "",
    serviceName: entry.serviceName ?? "",
    stackTrace: entry.stackTrace ?? "",
    attributes: attributePairs(entry.attributes),
  });
}

/** A cheap upper bound of a request's encoded size, to keep batches under the server's limit. */
export function estimatedBytes(request: LogRequest): number {
  let chars =
    request.timestamp.length +
    request.hostname.length +
    request.loggerName.length +
    request.module.length +
    request.filename.length +
    request.functionName.length +
    request.lineNumber.length +
    request.message.length +
    request.pathName.length +
    request.processId.length +
    request.processName.length +
    request.threadId.length +
    request.threadName.length +
    request.serviceName.length +
    request.stackTrace.length;
  for (const { key, value } of request.attributes) chars += key.length + value.length + 12;
  // A UTF-16 unit is at most 3 UTF-8 bytes; each field adds a tag and a length.
  return 3 * chars + 64;
}
