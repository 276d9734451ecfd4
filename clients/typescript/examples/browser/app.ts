/**
 * The example page: button clicks, uncaught errors and unhandled rejections go to the log
 * server. `createLogClient` buffers and batches; `LogServiceClient` is the original README's
 * one-call-per-message API, used here as written.
 */
import { LogServiceClient, createLogClient } from "../../src/index.js";

const server = new URLSearchParams(location.search).get("server") ?? "http://localhost:4021";
const status = document.getElementById("status") as HTMLElement;
const show = (text: string): void => {
  status.textContent = text;
};

const log = createLogClient({
  address: server,
  loggerName: "browser-example",
  serviceName: "example-page",
  attributes: { page: location.pathname },
  onError: (error) => show(`not delivered yet: ${error.message}`),
});

for (const id of ["buy", "hello", "throw", "reject"]) {
  document.getElementById(id)?.addEventListener("click", () => log.info("button clicked", { button: id }));
}

document.getElementById("hello")?.addEventListener("click", () => {
  const client = new LogServiceClient(server);
  const logEntry = { message: "hello from the browser", level: "INFO", loggerName: "browser-example" };
  client.logMessage(logEntry).then(
    (response) => show(`LogMessage: success=${response.success}`),
    (error: unknown) => show(`LogMessage failed: ${(error as Error).message}`),
  );
});

document.getElementById("throw")?.addEventListener("click", () => {
  setTimeout(() => {
    throw new Error("thrown on purpose");
  });
});

document.getElementById("reject")?.addEventListener("click", () => {
  void Promise.reject(new Error("rejected on purpose"));
});

window.onerror = (message, source, line, column, error) => {
  log.log("error", String(message), { column: column ?? "" }, {
    filename: source ?? "",
    lineNumber: line ?? "",
    stackTrace: error?.stack ?? "",
  });
};

window.addEventListener("unhandledrejection", (event) => {
  const reason: unknown = event.reason;
  const text = reason instanceof Error ? reason.message : String(reason);
  log.log("error", `unhandled rejection: ${text}`, {}, { stackTrace: reason instanceof Error ? (reason.stack ?? "") : "" });
});

// A page can be closed at any moment: send what is buffered when it is hidden.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") void log.flush().catch(() => {});
});

// For tests and the console: the clients of this page.
Object.assign(window, { exampleLog: log, LogServiceClient });
show(`ready: logging to ${server}`);
