"""log_server: every log line from every local process in one ordered, rotating set of files."""

__version__ = "0.1.0"
