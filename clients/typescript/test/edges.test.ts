/**
 * Paths the real log server does not take: the original project's server (LogBridge only),
 * an older server without LogBatch, a server that refuses every request, and one that
 * accepts connections but never answers. The first three are small Connect servers speaking
 * the same protocol over real HTTP/2 loopback sockets.
 */
import assert from "node:assert/strict";
import { type Http2Server, createServer as createHttp2Server } from "node:http2";
import { type Server, type Socket, createServer as createTcpServer } from "node:net";
import { after, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  type LogRequest,
  LogBridge,
  LogResponseSchema,
  LogService,
  UndeliveredError,
  createLogClient,
} from "../src/node.js";

async function listen(server: Http2Server | Server): Promise<number> {
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}

/**
 * An HTTP/2 gRPC server whose methods are the given ones (others: UNIMPLEMENTED); `unknown`
 * sees the path of each call to a service it does not have.
 */
async function grpcServer(
  routes: (router: ConnectRouter) => void,
  unknown: (path: string) => void = () => {},
): Promise<{ port: number; close: () => void }> {
  const server = createHttp2Server(
    connectNodeAdapter({
      routes,
      grpc: true,
      connect: false,
      grpcWeb: false,
      // What grpcio answers for a service it does not serve: a trailers-only UNIMPLEMENTED.
      fallback(request, response) {
        unknown(request.url ?? "");
        response.writeHead(200, { "content-type": "application/grpc", "grpc-status": String(Code.Unimplemented) });
        response.end();
      },
    }),
  );
  const port = await listen(server);
  return { port, close: () => server.close() };
}

describe("the original project's server, which serves only LogBridge", () => {
  let close = (): void => {};
  after(() => close());

  test("gets every batch on LogBridge, in order, each once; LogService is tried only once", async () => {
    const batches: string[][] = [];
    const unknown: string[] = [];
    const server = await grpcServer(
      (router) =>
        router.service(LogBridge, {
          logBatch(request) {
            batches.push(request.requests.map((each) => each.message));
            return create(LogResponseSchema, { success: true });
          },
        }),
      (path) => unknown.push(path),
    );
    close = server.close;
    const errors: Error[] = [];
    const client = createLogClient({
      address: `127.0.0.1:${server.port}`,
      maxBatchMessages: 5,
      onError: (error) => errors.push(error),
    });
    for (let i = 0; i < 20; i++) client.info(`m ${i}`);
    await client.close(10_000);
    assert.deepEqual(
      batches.flat(),
      Array.from({ length: 20 }, (_, i) => `m ${i}`),
    );
    assert.ok(batches.length >= 4, `${batches.length} batches of at most 5`);
    assert.deepEqual(unknown, ["/logservice.LogService/LogBatch"]);
    assert.deepEqual(errors, [], "the fallback is not a failure");
    assert.equal(client.stats.delivered, 20);
  });
});

describe("a server older than LogBatch", () => {
  const received: LogRequest[] = [];
  let close = (): void => {};
  after(() => close());

  test("gets one LogMessage per message, in order, each once", async () => {
    const server = await grpcServer((router) =>
      router.service(LogService, {
        logMessage(request) {
          received.push(request);
          return create(LogResponseSchema, { success: true });
        },
      }),
    );
    close = server.close;
    const client = createLogClient({ address: `127.0.0.1:${server.port}`, onError: () => {} });
    for (let i = 0; i < 20; i++) client.info(`m ${i}`);
    await client.close(10_000);
    assert.deepEqual(
      received.map((request) => request.message),
      Array.from({ length: 20 }, (_, i) => `m ${i}`),
    );
    assert.equal(client.stats.delivered, 20);
  });
});

describe("a server that refuses the request", () => {
  let close = (): void => {};
  after(() => close());

  test("is not sent it again; the next flush reports it once", async () => {
    let calls = 0;
    const server = await grpcServer((router) =>
      router.service(LogService, {
        logBatch() {
          calls += 1;
          throw new ConnectError("not a LogBatchRequest", Code.InvalidArgument);
        },
      }),
    );
    close = server.close;
    const errors: string[] = [];
    const client = createLogClient({ address: `127.0.0.1:${server.port}`, onError: (error) => errors.push(error.message) });
    try {
      client.info("refused");
      await assert.rejects(client.flush(10_000), (error: unknown) => {
        assert.ok(error instanceof UndeliveredError);
        assert.equal(error.undelivered, 1);
        return true;
      });
      assert.equal(calls, 1, "a refused batch is not resent");
      assert.deepEqual(client.stats, { delivered: 0, dropped: 0, refused: 1, buffered: 0 });
      assert.ok(errors.some((message) => message.includes("not a LogBatchRequest")));
    } finally {
      await client.close(1000).catch(() => {});
    }
  });
});

describe("a server that accepts connections and never answers", () => {
  const sockets: Socket[] = [];
  const silent = createTcpServer((socket) => sockets.push(socket));
  after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });

  for (const transport of ["grpc", "grpc-web"] as const) {
    test(`close() returns by its deadline with the call in flight cancelled (${transport})`, { timeout: 20_000 }, async () => {
      const port = await (silent.listening ? Promise.resolve((silent.address() as { port: number }).port) : listen(silent));
      const client = createLogClient({ address: `127.0.0.1:${port}`, transport, callTimeoutMs: 60_000, onError: () => {} });
      client.info("into the void");
      await assert.rejects(client.close(300), UndeliveredError);
      assert.equal(client.stats.delivered, 0);
    });
  }
});
