import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { estimatedBytes } from "../src/entry.js";
import { Backoff, isRetryable } from "../src/retry.js";
import {
  Level,
  LogRequestSchema,
  attributeValue,
  baseUrl,
  isoTimestamp,
  levelFromPino,
  parseLevel,
  toLogRequest,
} from "../src/node.js";

describe("levels", () => {
  test("names in any case and numbers", () => {
    assert.equal(parseLevel("INFO"), Level.INFO);
    assert.equal(parseLevel("critical"), Level.CRITICAL);
    assert.equal(parseLevel("Trade"), Level.TRADE);
    assert.equal(parseLevel(Level.REPORT), Level.REPORT);
    assert.equal(parseLevel(99 as Level), undefined);
    assert.equal(parseLevel("loud"), undefined);
  });

  test("pino, winston and console names", () => {
    assert.equal(parseLevel("warn"), Level.WARNING);
    assert.equal(parseLevel("fatal"), Level.CRITICAL);
    assert.equal(parseLevel("trace"), Level.DEBUG);
    assert.equal(parseLevel("silly"), Level.DEBUG);
    assert.equal(parseLevel("http"), Level.INFO);
  });

  test("pino's numbers", () => {
    assert.deepEqual(
      [10, 20, 30, 40, 50, 60, 0].map(levelFromPino),
      [Level.DEBUG, Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL, Level.NOTSET],
    );
  });
});

describe("entries", () => {
  test("an empty entry is all empty fields at NOTSET", () => {
    const request = toLogRequest({});
    assert.equal(request.level, Level.NOTSET);
    assert.equal(request.message, "");
    assert.equal(request.timestamp, "");
    assert.deepEqual(request.attributes, []);
  });

  test("numbers for line, pid and thread become text", () => {
    const request = toLogRequest({ lineNumber: 42, processId: 7, threadId: 3 });
    assert.deepEqual([request.lineNumber, request.processId, request.threadId], ["42", "7", "3"]);
  });

  test("an unknown level is refused at once", () => {
    assert.throws(() => toLogRequest({ level: "loud" }), TypeError);
  });

  test("attributes keep their order; pairs may repeat keys", () => {
    const fromObject = toLogRequest({ attributes: { b: 1, a: "x", skipped: undefined, c: null } });
    assert.deepEqual(
      fromObject.attributes.map(({ key, value }) => [key, value]),
      [["b", "1"], ["a", "x"], ["c", "null"]],
    );
    const fromPairs = toLogRequest({ attributes: [{ key: "k", value: "1" }, { key: "k", value: "2" }] });
    assert.deepEqual(fromPairs.attributes.map(({ value }) => value), ["1", "2"]);
  });

  test("attribute values: text as is, the rest as JSON", () => {
    assert.equal(attributeValue("a b"), "a b");
    assert.equal(attributeValue(1.5), "1.5");
    assert.equal(attributeValue(true), "true");
    assert.equal(attributeValue(10n), "10");
    assert.equal(attributeValue({ a: [1, 2] }), '{"a":[1,2]}');
    assert.equal(attributeValue(new Date(Date.UTC(2026, 0, 2))), "2026-01-02T00:00:00.000Z");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal(attributeValue(cyclic), "[object Object]");
    assert.match(attributeValue(new Error("boom")), /^Error: boom/);
  });

  test("the size estimate is never below the encoded size", () => {
    for (const message of ["", "hello", "é".repeat(1000), "😀".repeat(1000), "\u0000x"]) {
      const request = toLogRequest({
        message,
        hostname: message,
        level: "ERROR",
        attributes: { [message]: message, k: message },
      });
      assert.ok(estimatedBytes(request) >= toBinary(LogRequestSchema, request).length, message.slice(0, 10));
    }
  });
});

describe("retries", () => {
  test("the backoff doubles up to its cap and starts over after a success", () => {
    const backoff = new Backoff(50, 300);
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()], [50, 100, 200, 300, 300]);
    backoff.reset();
    assert.equal(backoff.next(), 50);
  });

  test("network and server-busy failures are resent; refusals are not", () => {
    for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Canceled, Code.Unknown]) {
      assert.ok(isRetryable(new ConnectError("x", code)), Code[code]);
    }
    for (const code of [Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.FailedPrecondition]) {
      assert.ok(!isRetryable(new ConnectError("x", code)), Code[code]);
    }
    assert.ok(isRetryable(new TypeError("fetch failed")), "a fetch that never reached the server");
  });
});

describe("addresses and time", () => {
  test("host:port gets http://, URLs stay", () => {
    assert.equal(baseUrl("127.0.0.1:4021"), "http://127.0.0.1:4021");
    assert.equal(baseUrl("http://localhost:4021"), "http://localhost:4021");
    assert.equal(baseUrl("https://logs.example:443"), "https://logs.example:443");
  });

  test("timestamps as the server writes its own", () => {
    assert.equal(isoTimestamp(new Date(Date.UTC(2026, 11, 1, 10, 0, 0, 123))), "2026-12-01T10:00:00.123000+00:00");
  });
});
