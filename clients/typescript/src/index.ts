/**
 * The browser build (also what bundlers pick without a "node" condition): gRPC-Web over
 * fetch, which the server answers on its gRPC port when CORS allows the page's origin.
 */
import type { Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { LogClient, type LogClientOptions } from "./client.js";
import { DEFAULT_ADDRESS, LogServiceCalls, baseUrl } from "./service.js";

export * from "./common.js";

export type WebTransportChoice = "grpc-web" | Transport;

export interface WebClientOptions extends Omit<LogClientOptions, "transport"> {
  /** `http://host:port` of the server's gRPC port; default http://localhost:4021. */
  address?: string;
  transport?: WebTransportChoice;
}

function webTransport(address: string, choice: WebTransportChoice | undefined): Transport {
  if (choice === undefined || choice === "grpc-web") {
    return createGrpcWebTransport({ baseUrl: baseUrl(address) });
  }
  if (typeof choice === "string") throw new TypeError(`transport ${JSON.stringify(choice)}: browsers speak grpc-web only`);
  return choice;
}

/** A buffered, batching logger for a web page (see LogClient). */
export function createLogClient(options: WebClientOptions = {}): LogClient {
  const { address = DEFAULT_ADDRESS, transport, ...rest } = options;
  const hostname = (globalThis as { location?: { hostname?: string } }).location?.hostname;
  return new LogClient({ hostname, ...rest, transport: webTransport(address, transport) });
}

/** One call per message, as in the original README: `new LogServiceClient('http://localhost:4021')`. */
export class LogServiceClient extends LogServiceCalls {
  constructor(address: string = DEFAULT_ADDRESS, options: { transport?: WebTransportChoice } = {}) {
    super(webTransport(address, options.transport));
  }
}
