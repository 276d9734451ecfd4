/** LogClient and LogServiceClient against the real server, over native gRPC and gRPC-Web. */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { after, before, describe, test } from "node:test";
import {
  type LogClient,
  LogServiceClient,
  type NodeTransportChoice,
  UndeliveredError,
  createLogClient,
} from "../src/node.js";
import { type RunningServer, freePort, startServer } from "./server.js";

interface JsonLine {
  seq: number;
  logger_name: string;
  level: string;
  message: string;
  hostname: string;
  process_id: string;
  service_name: string;
  timestamp: string;
  stack_trace: string;
  attributes?: Record<string, string>;
}

const TRANSPORTS: NodeTransportChoice[] = ["grpc", "grpc-web"];

for (const transport of TRANSPORTS) {
  describe(`LogClient over ${transport as string}`, () => {
    let server: RunningServer;
    let client: LogClient;
    let logger = 0;
    const opened: LogClient[] = [];
    const lines = async (name: string, count: number): Promise<JsonLine[]> => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const mine = server
          .clientLines()
          .map((line) => JSON.parse(line) as JsonLine)
          .filter((line) => line.logger_name === name);
        if (mine.length >= count) return mine;
        if (Date.now() > deadline) throw new Error(`${mine.length} of ${count} lines of ${name}`);
        await new Promise((done) => setTimeout(done, 50));
      }
    };
    /** A client with a logger name of its own, so tests read only their lines. */
    const fresh = (options: Parameters<typeof createLogClient>[0] = {}): { client: LogClient; name: string } => {
      const name = `t${transport as string}-${++logger}`;
      const client = createLogClient({ address: server.grpcAddress, transport, loggerName: name, ...options });
      opened.push(client);
      return { client, name };
    };

    before(async () => {
      server = await startServer("--format", "json");
    });
    after(async () => {
      // Also those a failed assertion left open, so that nothing keeps the runner alive.
      await Promise.allSettled(opened.map((each) => each.close(1000)));
      await server.stop();
    });

    test("log() writes the message, level, defaults and attributes", async () => {
      const made = fresh({ serviceName: "checkout", attributes: { region: "eu" } });
      client = made.client;
      client.log("warning", "disk almost full", { free_mb: 12, path: "/var" });
      await client.flush();
      const [line] = await lines(made.name, 1);
      assert.ok(line);
      assert.equal(line.level, "WARNING");
      assert.equal(line.message, "disk almost full");
      assert.equal(line.service_name, "checkout");
      assert.equal(line.hostname, hostname());
      assert.equal(line.process_id, String(process.pid));
      assert.match(line.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);
      assert.deepEqual(line.attributes, { region: "eu", free_mb: "12", path: "/var" });
      await client.close();
    });

    test("debug/info/warn/error helpers map to the server's levels", async () => {
      const made = fresh();
      client = made.client;
      client.debug("d");
      client.info("i");
      client.warn("w");
      client.error("e", { code: "E1" });
      client.log("critical", "c", undefined, { stackTrace: "at main" });
      await client.close();
      const written = await lines(made.name, 5);
      assert.deepEqual(
        written.map((line) => [line.level, line.message]),
        [["DEBUG", "d"], ["INFO", "i"], ["WARNING", "w"], ["ERROR", "e"], ["CRITICAL", "c"]],
      );
      assert.equal(written[4]?.stack_trace, "at main");
    });

    test("many messages go in batches, each once and in order", async () => {
      const count = 2500;
      const made = fresh({ maxBatchMessages: 200 });
      client = made.client;
      for (let i = 0; i < count; i++) client.info(`m ${i}`);
      await client.close(30_000);
      const written = await lines(made.name, count);
      assert.equal(written.length, count);
      assert.deepEqual(
        written.map((line) => line.message),
        Array.from({ length: count }, (_, i) => `m ${i}`),
      );
      const seqs = written.map((line) => line.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      assert.equal(client.stats.delivered, count);
    });

    test("durable mode: flush resolves once the lines are on disk", async () => {
      const made = fresh({ durable: true });
      client = made.client;
      client.info("durable one");
      await client.flush();
      assert.equal(server.clientLines().filter((line) => line.includes(`"logger_name":"${made.name}"`)).length, 1);
      await client.close();
    });

    test("an unknown level is refused at the call", async () => {
      const made = fresh();
      client = made.client;
      assert.throws(() => client.log("loud", "x"), TypeError);
      await client.close();
    });

    test("after close, log() drops and counts", async () => {
      const made = fresh();
      client = made.client;
      await client.close();
      client.info("too late");
      assert.equal(client.stats.dropped, 1);
      assert.equal(await client.close(), undefined, "a second close returns the first one's result");
    });

    test("LogServiceClient.logMessage works as in the original README", async () => {
      const service = new LogServiceClient(server.grpcAddress, { transport });
      const name = `readme-${transport as string}`;
      const response = await service.logMessage({ message: "hello", level: "INFO", loggerName: name });
      assert.equal(response.success, true);
      const batch = await service.logBatch([
        { message: "one", loggerName: name },
        { message: "two", loggerName: name, attributes: { k: "v" } },
      ]);
      assert.equal(batch.success, true);
      service.close();
      const written = await lines(name, 3);
      assert.deepEqual(written.map((line) => line.message), ["hello", "one", "two"]);
      assert.deepEqual(written[2]?.attributes, { k: "v" });
    });
  });
}

describe("no server", () => {
  for (const transport of TRANSPORTS) {
    test(`close() gives up by its deadline and names what was left (${transport as string})`, async () => {
      const client = createLogClient({
        address: `127.0.0.1:${await freePort()}`,
        transport,
        onError: () => {},
      });
      for (let i = 0; i < 5; i++) client.info(`lost ${i}`);
      await assert.rejects(client.close(500), (error: unknown) => {
        assert.ok(error instanceof UndeliveredError);
        assert.equal(error.undelivered, 5);
        assert.match(error.message, /5 log message\(s\) not delivered/);
        return true;
      });
    });
  }

  test("the buffer is bounded: past it, new messages are dropped and reported", async () => {
    const errors: string[] = [];
    const client = createLogClient({
      address: `127.0.0.1:${await freePort()}`,
      maxBufferedMessages: 3,
      onError: (error) => errors.push(error.message),
    });
    for (let i = 0; i < 5; i++) client.info(`m ${i}`);
    assert.deepEqual(client.stats, { delivered: 0, dropped: 2, refused: 0, buffered: 3 });
    assert.equal(errors.filter((message) => message.includes("log buffer full (3 messages)")).length, 1, "one report for the two drops");
    await assert.rejects(client.flush(200), UndeliveredError);
    await assert.rejects(client.close(200), UndeliveredError);
  });

  test("a server that comes later gets what was buffered", async () => {
    const port = await freePort();
    const client = createLogClient({
      address: `127.0.0.1:${port}`,
      loggerName: "late",
      backoff: { initialMs: 20, maxMs: 200 },
      onError: () => {},
    });
    client.info("before the server");
    const server = await startServer("--grpc_port", String(port));
    try {
      await client.close(15_000);
      const written = await server.waitForClientLines(1);
      assert.match(written[0] ?? "", / before the server pid=\d+$/);
    } finally {
      await server.stop();
    }
  });
});
