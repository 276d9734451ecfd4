/**
 * The real log server for the tests: a process of the repository's .venv on free loopback
 * ports (`--port 0 --grpc_port 0`, the ports read from its ready line), writing into a
 * temporary folder. Tests read the lines it wrote.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
export const VECTORS_PATH = join(ROOT, "schema/vectors/vectors.json");
export const SERVER_NAME = "NodeTestServer";
const SERVER_BIN = process.env.LOG_SERVER_BIN ?? join(ROOT, ".venv/bin/log_server");
/** Bounds for waiting on the server; a test that needs longer has failed. */
const START_TIMEOUT_MS = 30_000;
const LINES_TIMEOUT_MS = 15_000;

export interface RunningServer {
  grpcAddress: string;
  grpcPort: number;
  logDir: string;
  /** Lines of `_main.log` written for clients (the server's own are left out). */
  clientLines(): string[];
  waitForClientLines(count: number): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startServer(...args: string[]): Promise<RunningServer> {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`${SERVER_BIN} missing: run \`make .venv/.native-installed\` at the repository root`);
  }
  const logDir = mkdtempSync(join(tmpdir(), "log-server-ts-"));
  const child = spawn(
    SERVER_BIN,
    ["--port", "0", "--grpc_port", "0", "--log_dir", logDir, "--name", SERVER_NAME, "--stats_interval", "0", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const grpcPort = await readyPort(child);
  const json = args.includes("json");
  const own = (line: string): boolean =>
    json ? (JSON.parse(line) as { logger_name: string }).logger_name === SERVER_NAME : line.slice(58, 73).trimEnd() === SERVER_NAME;
  const clientLines = (): string[] => {
    const path = join(logDir, "_main.log");
    if (!existsSync(path)) return [];
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => line !== "" && !own(line));
  };
  return {
    grpcAddress: `http://127.0.0.1:${grpcPort}`,
    grpcPort,
    logDir,
    clientLines,
    async waitForClientLines(count: number): Promise<string[]> {
      const deadline = Date.now() + LINES_TIMEOUT_MS;
      let lines = clientLines();
      while (lines.length < count) {
        if (Date.now() > deadline) throw new Error(`${lines.length} of ${count} lines on disk`);
        await new Promise((done) => setTimeout(done, 50));
        lines = clientLines();
      }
      return lines;
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) {
        const exited = new Promise((done) => child.once("exit", done));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

function readyPort(child: ChildProcess): Promise<number> {
  return new Promise((resolvePort, reject) => {
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no ready line within ${START_TIMEOUT_MS} ms: ${stderr}`));
    }, START_TIMEOUT_MS);
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /ready .*grpc=\S+:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolvePort(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${stderr}`));
    });
  });
}

/** A loopback port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((done, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => done(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

const PLACEHOLDERS: Readonly<Record<string, { text: RegExp; json: RegExp }>> = {
  "{seq}": { text: /\s*\d+/y, json: /\d+/y },
  "{received_at}": {
    text: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00/y,
    json: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00/y,
  },
};

/**
 * Does a line match a vector's expected line, `{seq}` and `{received_at}` standing for any
 * number and receive time? (Compared piece by piece: a long case is too big for one RegExp.)
 */
export function matchesTemplate(line: string, template: string, json: boolean): boolean {
  let position = 0;
  for (const piece of template.replace(/\n$/, "").split(/(\{seq\}|\{received_at\})/)) {
    const placeholder = PLACEHOLDERS[piece];
    if (placeholder === undefined) {
      if (!line.startsWith(piece, position)) return false;
      position += piece.length;
    } else {
      const pattern = json ? placeholder.json : placeholder.text;
      pattern.lastIndex = position;
      if (!pattern.test(line)) return false;
      position = pattern.lastIndex;
    }
  }
  return position === line.length;
}
