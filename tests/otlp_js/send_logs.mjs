// One log record through the OpenTelemetry JavaScript SDK (sdk-logs) and one of its OTLP
// exporters, to log_server: node send_logs.mjs grpc|proto|json PORT BODY TRACE_ID SPAN_ID.
// Exits non-zero when the SDK reports an export error (tests/sources/test_otlp_js_sdk.py).
import { DiagLogLevel, ROOT_CONTEXT, TraceFlags, diag, trace } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter as GrpcExporter } from "@opentelemetry/exporter-logs-otlp-grpc";
import { OTLPLogExporter as JsonExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPLogExporter as ProtoExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";

const [kind, port, body, traceId, spanId] = process.argv.slice(2);
const report = (...args) => {
  console.error(...args);
  process.exitCode = 1;
};
diag.setLogger(
  { error: report, warn: report, info() {}, debug() {}, verbose() {} },
  DiagLogLevel.WARN,
);

const base = `http://127.0.0.1:${port}`;
const exporter =
  kind === "grpc"
    ? new GrpcExporter({ url: base })
    : kind === "proto"
      ? new ProtoExporter({ url: `${base}/v1/logs`, compression: "gzip" })
      : new JsonExporter({ url: `${base}/v1/logs` });
const provider = new LoggerProvider({
  resource: resourceFromAttributes({
    "service.name": "js-svc",
    "host.name": "jshost",
    "deployment.environment": "test",
  }),
  processors: [new SimpleLogRecordProcessor({ exporter })],
});

function work() {
  return new TypeError("bad value");
}
const error = work();
provider.getLogger("js.scope").emit({
  timestamp: [1700000000, 123456789],
  severityNumber: SeverityNumber.WARN,
  severityText: "WARN",
  body,
  attributes: {
    "code.file.path": "app.js",
    "code.function.name": "work",
    "code.line.number": 42,
    "thread.id": 7,
    "thread.name": "worker",
    "exception.type": error.name,
    "exception.message": error.message,
    "exception.stacktrace": error.stack,
    user: "ann",
    count: 3,
  },
  context: trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: TraceFlags.SAMPLED,
  }),
});
await provider.shutdown();
