import { Level } from "./gen/log_service_pb.js";

export { Level };

/** The server's level names, lower case, as callers usually write them. */
export type LevelName =
  | "notset"
  | "debug"
  | "stream"
  | "info"
  | "logon"
  | "logout"
  | "trade"
  | "schedule"
  | "report"
  | "warning"
  | "error"
  | "critical";

/** What pino, winston and the console call their levels, mapped onto the server's. */
const ALIASES: Readonly<Record<string, Level>> = {
  trace: Level.DEBUG,
  verbose: Level.DEBUG,
  silly: Level.DEBUG,
  http: Level.INFO,
  log: Level.INFO,
  notice: Level.INFO,
  warn: Level.WARNING,
  fatal: Level.CRITICAL,
  alert: Level.CRITICAL,
  emerg: Level.CRITICAL,
  crit: Level.CRITICAL,
};

/** A level from its number or its name in any case (`"INFO"`, `"warn"`), or undefined. */
export function parseLevel(level: Level | string): Level | undefined {
  if (typeof level === "number") {
    return Level[level] === undefined ? undefined : level;
  }
  const upper = level.toUpperCase();
  const named = (Level as unknown as Record<string, Level | undefined>)[upper];
  if (typeof named === "number") {
    return named;
  }
  return ALIASES[level.toLowerCase()];
}

/** pino's numeric levels (trace 10 … fatal 60) onto the server's. */
export function levelFromPino(level: number): Level {
  if (level >= 60) return Level.CRITICAL;
  if (level >= 50) return Level.ERROR;
  if (level >= 40) return Level.WARNING;
  if (level >= 30) return Level.INFO;
  if (level >= 1) return Level.DEBUG;
  return Level.NOTSET;
}
