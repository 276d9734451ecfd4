import type { LogEntry } from "../src/node.js";

/** A case of schema/vectors/vectors.json (format 1). */
export interface VectorCase {
  name: string;
  fields: Record<string, unknown> & { level: string; attributes: { key: string; value: string }[] };
  text: string;
  json: string;
}

export const camel = (name: string): string => name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** A case's fields (protobuf names) as a LogEntry, every one as given. */
export function entryOf(fields: VectorCase["fields"]): LogEntry {
  const entry: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) entry[camel(name)] = value;
  return entry as LogEntry;
}
