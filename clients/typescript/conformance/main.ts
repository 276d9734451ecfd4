/**
 * The TypeScript client's program for the interop harness (tests/interop, contract in
 * schema/vectors/README.md). Exit codes: 0 done, 1 failed, 2 bad arguments, 3 undelivered
 * (server down).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type NodeTransportChoice, UndeliveredError, createLogClient } from "../src/node.js";
import { type VectorCase, entryOf } from "./vectors.js";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_UNDELIVERED = 3;

class Failure extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Every vector case's fields, as given. Never in acknowledged mode: scenario `original` sends
 * them the same way to the original project's server, which ignores `log-ack` and serves
 * only LogBridge (the client falls back to it on UNIMPLEMENTED).
 */
async function vectors(address: string, transport: NodeTransportChoice, path: string): Promise<void> {
  const cases = (JSON.parse(readFileSync(path, "utf8")) as { cases: VectorCase[] }).cases;
  const client = createLogClient({ address, transport, maxBufferedMessages: cases.length, onError: () => {} });
  for (const vector of cases) client.write(entryOf(vector.fields));
  await client.close(30_000);
}

async function restart(address: string, transport: NodeTransportChoice, count: number): Promise<void> {
  const client = createLogClient({
    address,
    transport,
    durable: true,
    loggerName: "conformance",
    maxBufferedMessages: count,
    callTimeoutMs: 2000,
    backoff: { initialMs: 20, maxMs: 1000 },
    onError: () => {},
  });
  for (let i = 0; i < count; i++) {
    client.info(`restart ${i}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await client.close(60_000);
}

async function down(address: string, transport: NodeTransportChoice): Promise<void> {
  const client = createLogClient({ address, transport, onError: () => {} });
  for (let i = 0; i < 5; i++) client.info(`down ${i}`);
  try {
    await client.close(2000);
  } catch (error) {
    if (error instanceof UndeliveredError) throw new Failure(EXIT_UNDELIVERED, error.message);
    throw error;
  }
  throw new Failure(EXIT_FAILED, `all 5 messages were delivered, but nothing should listen at ${address}`);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        scenario: { type: "string" },
        transport: { type: "string", default: "grpc" },
        address: { type: "string" },
        vectors: { type: "string" },
        count: { type: "string", default: "100" },
      },
    }));
  } catch (error) {
    throw new Failure(EXIT_USAGE, (error as Error).message);
  }
  const { scenario, address } = values;
  const transport = values.transport;
  if (transport !== "grpc" && transport !== "grpc-web") {
    throw new Failure(EXIT_USAGE, `--transport ${transport}: grpc or grpc-web`);
  }
  if (address === undefined) throw new Failure(EXIT_USAGE, "--address HOST:PORT is required");
  switch (scenario) {
    case "vectors":
    case "original":
      if (values.vectors === undefined) throw new Failure(EXIT_USAGE, "--vectors PATH is required");
      return vectors(address, transport, values.vectors);
    case "restart":
      return restart(address, transport, Number.parseInt(values.count, 10));
    case "down":
      return down(address, transport);
    default:
      throw new Failure(EXIT_USAGE, `--scenario ${scenario}: one of vectors, original, restart, down`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`conformance: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(error instanceof Failure ? error.code : EXIT_FAILED);
  },
);
