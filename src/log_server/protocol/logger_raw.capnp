# Internal: the same wire layout as LoggerMsg in schema/logger.capnp, with every
# Text field read as Data, so that a field holding invalid UTF-8 can still be read
# (as bytes) and decoded with replacement instead of failing the whole frame.
# Text and Data share one encoding (a byte list; Text adds a NUL terminator).
@0xb8e3a4f5d2c61a07;

struct LoggerMsgRaw {
  timestamp @0 :Data;
  hostname @1 :Data;
  loggerName @2 :Data;
  module @3 :Data;
  level @4 :UInt16;
  filename @5 :Data;
  functionName @6 :Data;
  lineNumber @7 :Data;
  message @8 :Data;
  pathName @9 :Data;
  processId @10 :Data;
  processName @11 :Data;
  threadId @12 :Data;
  threadName @13 :Data;
  serviceName @14 :Data;
  stackTrace @15 :Data;
}
