/** The package's entry points, imported by name as a user would (Node resolves the package to itself). */
import assert from "node:assert/strict";
import { test } from "node:test";

test("in Node the package is the Node build: native gRPC by default", async () => {
  const main = (await import("log-server-client")) as Record<string, unknown>;
  const node = (await import("log-server-client/node")) as Record<string, unknown>;
  assert.equal(main.createLogClient, node.createLogClient);
  assert.equal(typeof main.nodeTransport, "function");
  assert.equal(typeof main.LogServiceClient, "function");
});

test("the web build speaks gRPC-Web only", async () => {
  const web = (await import("log-server-client/web")) as typeof import("../src/index.js");
  assert.equal((web as Record<string, unknown>).nodeTransport, undefined);
  assert.throws(() => web.createLogClient({ transport: "grpc" as "grpc-web" }), /browsers speak grpc-web only/);
  const client = web.createLogClient({ address: "http://127.0.0.1:9" });
  await client.close(0).catch(() => {});
});

test("pino and winston transports are subpath exports", async () => {
  const pino = (await import("log-server-client/pino")) as Record<string, unknown>;
  const winston = (await import("log-server-client/winston")) as Record<string, unknown>;
  assert.equal(typeof pino.default, "function");
  assert.equal(typeof winston.LogServerTransport, "function");
});
