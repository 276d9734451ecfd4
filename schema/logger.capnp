# The TCP protocol's message. A compatibility contract with existing clients:
# never renumber, rename or retype a field; add only.
# The one hand-edited copy: `make gen` regenerates every other (docs/protocol.md).
@0xfc867d59c4f2e15c;

enum Level {
  notset @0;
  debug @1;
  stream @2;
  info @3;
  logon @4;
  logout @5;
  trade @6;
  schedule @7;
  report @8;
  warning @9;
  error @10;
  critical @11;
}

struct LoggerMsg {
  timestamp @0 :Text;
  hostname @1 :Text;
  loggerName @2 :Text;
  module @3 :Text;
  level @4 :Level;
  filename @5 :Text;
  functionName @6 :Text;
  lineNumber @7 :Text;
  message @8 :Text;
  pathName @9 :Text;
  processId @10 :Text;
  processName @11 :Text;
  threadId @12 :Text;
  threadName @13 :Text;
  serviceName @14 :Text;
  stackTrace @15 :Text;
  # Structured key/value pairs in the order the client gave them (Python `extra=`, Go slog
  # attributes, tracing fields). Optional: clients that predate it leave the pointer null.
  attributes @16 :List(Attribute);
}

struct Attribute {
  key @0 :Text;
  value @1 :Text;
}

# The optional first frame of a connection from the original project's newer clients
# (docs/protocol.md, "The original clients' dialect"): standard (unpacked) encoding, single
# segment, a root struct with no data words, which is how it is told from a LoggerMsg (one
# data word, for the level). Older clients sent the first four fields only.
struct HelloMsg {
  fromName @0 :Text;
  fromHost @1 :Text;
  fromAddress @2 :Text;
  toAddress @3 :Text;
  fromPublicIP @4 :Text;
}
