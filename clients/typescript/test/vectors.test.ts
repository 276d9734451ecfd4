/** schema/vectors: every case's fields become the request they describe, and the real server writes the expected line. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type VectorCase, camel, entryOf } from "../conformance/vectors.js";
import { Level, LogRequestSchema, createLogClient, toLogRequest } from "../src/node.js";
import { type RunningServer, VECTORS_PATH, matchesTemplate, startServer } from "./server.js";

const cases = (JSON.parse(readFileSync(VECTORS_PATH, "utf8")) as { cases: VectorCase[] }).cases;

describe("vectors: fields to requests", () => {
  test("there are cases", () => {
    assert.ok(cases.length >= 20, `${cases.length} cases`);
  });

  test("the line comparison tells a different line apart", () => {
    const template = "{seq} a=1\n";
    assert.ok(matchesTemplate("        12 a=1", template, false));
    assert.ok(!matchesTemplate("        12 a=2", template, false));
    assert.ok(!matchesTemplate("        12 a=1 b=2", template, false));
    assert.ok(!matchesTemplate("x a=1", template, false));
  });

  for (const vector of cases) {
    test(vector.name, () => {
      const request = fromBinary(LogRequestSchema, toBinary(LogRequestSchema, toLogRequest(entryOf(vector.fields))));
      for (const [name, value] of Object.entries(vector.fields)) {
        if (name === "level") {
          assert.equal(Level[request.level], value, name);
        } else if (name === "attributes") {
          assert.deepEqual(request.attributes.map(({ key, value }) => ({ key, value })), value, name);
        } else {
          assert.equal((request as unknown as Record<string, unknown>)[camel(name)], value, name);
        }
      }
    });
  }
});

for (const format of ["text", "json"] as const) {
  describe(`vectors: lines the server writes (${format}) over native gRPC`, () => {
    let server: RunningServer;
    let lines: string[];
    before(async () => {
      server = await startServer("--format", format);
      const client = createLogClient({ address: server.grpcAddress });
      for (const vector of cases) client.write(entryOf(vector.fields));
      await client.close(30_000);
      lines = await server.waitForClientLines(cases.length);
    });
    after(() => server.stop());

    test("each case once, in order", () => {
      assert.equal(lines.length, cases.length);
    });

    cases.forEach((vector, index) => {
      test(vector.name, () => {
        const line = lines[index] ?? "";
        assert.ok(matchesTemplate(line, vector[format], format === "json"), `expected ${vector[format]}\ngot      ${line}`);
      });
    });
  });
}
