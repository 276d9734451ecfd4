/**
 * The Node build: native gRPC over HTTP/2 by default (the server's gRPC port speaks it
 * whatever its gRPC-Web setting), or gRPC-Web over HTTP/1.1. Messages get this process's
 * host name and pid unless told otherwise.
 */
import { hostname } from "node:os";
import type { Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { LogClient, type LogClientOptions } from "./client.js";
import { DEFAULT_ADDRESS, LogServiceCalls, baseUrl } from "./service.js";

export * from "./common.js";

export type NodeTransportChoice = "grpc" | "grpc-web" | Transport;

export interface NodeClientOptions extends Omit<LogClientOptions, "transport"> {
  /** `http://host:port` or `host:port` of the server's gRPC port; default localhost:4021. */
  address?: string;
  transport?: NodeTransportChoice;
}

/** A transport and how to close its connections, so that a closed client lets Node exit. */
export function nodeTransport(
  address: string,
  choice: NodeTransportChoice = "grpc",
): { transport: Transport; dispose: () => void } {
  const url = baseUrl(address);
  if (choice === "grpc") {
    const sessionManager = new Http2SessionManager(url);
    return {
      transport: createGrpcTransport({ baseUrl: url, sessionManager }),
      dispose: () => sessionManager.abort(),
    };
  }
  if (choice === "grpc-web") {
    return { transport: createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }), dispose: () => {} };
  }
  if (typeof choice === "string") throw new TypeError(`transport ${JSON.stringify(choice)}: grpc or grpc-web`);
  return { transport: choice, dispose: () => {} };
}

/** A buffered, batching logger (see LogClient); `close()` also closes its connections. */
export function createLogClient(options: NodeClientOptions = {}): LogClient {
  const { address = DEFAULT_ADDRESS, transport: choice, dispose: userDispose, ...rest } = options;
  const { transport, dispose } = nodeTransport(address, choice);
  return new LogClient({
    hostname: hostname(),
    processId: process.pid,
    ...rest,
    transport,
    dispose: () => {
      dispose();
      userDispose?.();
    },
  });
}

/** One call per message, as in the original README: `new LogServiceClient('http://localhost:4021')`. */
export class LogServiceClient extends LogServiceCalls {
  constructor(address: string = DEFAULT_ADDRESS, options: { transport?: NodeTransportChoice } = {}) {
    const { transport, dispose } = nodeTransport(address, options.transport);
    super(transport, dispose);
  }
}
