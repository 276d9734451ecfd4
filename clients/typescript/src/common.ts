export { LogClient, UndeliveredError, isoTimestamp, type LogClientOptions, type LogClientStats } from "./client.js";
export {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_BATCH_MESSAGES,
  DEFAULT_MAX_BUFFERED_MESSAGES,
} from "./client.js";
export { type Attributes, type LogEntry, attributeValue, toLogRequest } from "./entry.js";
export { Level, type LevelName, levelFromPino, parseLevel } from "./levels.js";
export { DEFAULT_ADDRESS, baseUrl } from "./service.js";
export {
  type Attribute,
  type LogBatchRequest,
  type LogRequest,
  type LogResponse,
  AttributeSchema,
  LogBatchRequestSchema,
  LogRequestSchema,
  LogResponseSchema,
  LogBridge,
  LogService,
} from "./gen/log_service_pb.js";
