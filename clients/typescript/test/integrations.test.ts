/**
 * The pino and winston transports against the real server: fields land where they belong,
 * and closing flushes (durable mode, so a finished close means the lines are on disk; the
 * flush interval is longer than any test, so only the close can have sent them).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import winston from "winston";
import logServerTransport from "../src/pino.js";
import { LogServerTransport } from "../src/winston.js";
import { type RunningServer, startServer } from "./server.js";

interface JsonLine {
  logger_name: string;
  level: string;
  message: string;
  hostname: string;
  process_id: string;
  timestamp: string;
  stack_trace: string;
  attributes?: Record<string, string>;
}

let server: RunningServer;
const linesOf = (name: string): JsonLine[] =>
  server
    .clientLines()
    .map((line) => JSON.parse(line) as JsonLine)
    .filter((line) => line.logger_name === name);

before(async () => {
  server = await startServer("--format", "json");
});
after(() => server.stop());

describe("pino", () => {
  test("in-process: pino's fields map onto the message's, the rest are attributes; ending flushes", async () => {
    const stream = await logServerTransport({ address: server.grpcAddress, flushIntervalMs: 60_000, durable: true });
    const logger = pino({ name: "pino-app" }, stream);
    logger.info({ user: "ann", cart: { items: 2 } }, "checked out");
    logger.error(new Error("boom"), "failed");
    logger.child({ request: "r1" }).warn("slow");
    stream.end();
    await once(stream, "close");
    const written = linesOf("pino-app");
    assert.deepEqual(
      written.map((line) => [line.level, line.message]),
      [["INFO", "checked out"], ["ERROR", "failed"], ["WARNING", "slow"]],
    );
    assert.deepEqual(written[0]?.attributes, { user: "ann", cart: '{"items":2}' });
    assert.equal(written[0]?.process_id, String(process.pid));
    assert.match(written[0]?.timestamp ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}000\+00:00$/);
    assert.match(written[1]?.stack_trace ?? "", /^Error: boom\n\s+at /);
    assert.deepEqual(written[2]?.attributes, { request: "r1" });
  });

  test("in pino's worker thread (pino.transport), flushed when the transport ends", async () => {
    const transport = pino.transport({
      target: fileURLToPath(new URL("../src/pino.js", import.meta.url)),
      options: { address: server.grpcAddress, flushIntervalMs: 60_000, durable: true },
    });
    const logger = pino({ name: "pino-worker" }, transport);
    for (let i = 0; i < 10; i++) logger.info({ i }, "from the worker");
    logger.flush();
    transport.end();
    await once(transport, "close");
    const written = linesOf("pino-worker");
    assert.equal(written.length, 10);
    assert.deepEqual(written.map((line) => line.attributes?.i), Array.from({ length: 10 }, (_, i) => String(i)));
  });
});

describe("winston", () => {
  test("info's level and message map onto the message's, meta are attributes; logger.end() flushes", async () => {
    const transport = new LogServerTransport({ address: server.grpcAddress, loggerName: "winston-app", flushIntervalMs: 60_000, durable: true });
    const logger = winston.createLogger({
      level: "debug",
      format: winston.format.combine(winston.format.errors({ stack: true }), winston.format.json()),
      transports: [transport],
    });
    logger.info("paid", { order: 17, currency: "EUR" });
    logger.debug("details");
    logger.error(new Error("card declined"));
    const finished = once(transport, "finish");
    logger.end();
    await finished;
    const written = linesOf("winston-app");
    assert.deepEqual(
      written.map((line) => [line.level, line.message]),
      [["INFO", "paid"], ["DEBUG", "details"], ["ERROR", "card declined"]],
    );
    assert.deepEqual(written[0]?.attributes, { order: "17", currency: "EUR" });
    assert.match(written[2]?.stack_trace ?? "", /^Error: card declined\n\s+at /);
  });
});
