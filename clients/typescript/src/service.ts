import { create } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { LogBatchRequestSchema, type LogRequest, type LogResponse, LogService } from "./gen/log_service_pb.js";
import { type LogEntry, toLogRequest } from "./entry.js";

/** The server's default gRPC port, which also answers gRPC-Web. */
export const DEFAULT_ADDRESS = "http://localhost:4021";

/** `http://host:port` as given, `host:port` as `http://host:port`. */
export function baseUrl(address: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
}

function isLogRequest(entry: LogEntry | LogRequest): entry is LogRequest {
  return (entry as Partial<LogRequest>).$typeName === "logservice.LogRequest";
}

/**
 * The service's methods one call at a time, for code written against the original
 * README (`new LogServiceClient(url).logMessage(entry)`). Each call waits for the server;
 * LogClient is the buffered, batching logger.
 */
export class LogServiceCalls {
  protected readonly service: Client<typeof LogService>;

  constructor(
    transport: Transport,
    private readonly dispose?: () => void,
  ) {
    this.service = createClient(LogService, transport);
  }

  logMessage(entry: LogEntry | LogRequest, options?: CallOptions): Promise<LogResponse> {
    return this.service.logMessage(isLogRequest(entry) ? entry : toLogRequest(entry), options);
  }

  logBatch(entries: ReadonlyArray<LogEntry | LogRequest>, options?: CallOptions): Promise<LogResponse> {
    const requests = entries.map((entry) => (isLogRequest(entry) ? entry : toLogRequest(entry)));
    return this.service.logBatch(create(LogBatchRequestSchema, { requests }), options);
  }

  /** Close the connections this client opened (Node's HTTP/2 sessions; nothing in browsers). */
  close(): void {
    this.dispose?.();
  }
}
