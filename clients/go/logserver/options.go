package logserver

import (
	"errors"
	"time"
)

// Option configures a Client (see New).
type Option func(*options) error

type options struct {
	network, address string
	serviceName      string
	loggerName       string
	hostname         string
	queueSize        int
	queueBytes       int
	block            bool
	blockTimeout     time.Duration
	dialTimeout      time.Duration
	writeTimeout     time.Duration
	backoffMin       time.Duration
	backoffMax       time.Duration
	ack              bool
	hello            bool
	maxFrameSize     int
}

func defaultOptions() options {
	return options{
		network:      "tcp",
		address:      DefaultAddress,
		queueSize:    100_000,
		queueBytes:   64 << 20,
		dialTimeout:  5 * time.Second,
		writeTimeout: 30 * time.Second,
		backoffMin:   50 * time.Millisecond,
		backoffMax:   5 * time.Second,
		maxFrameSize: DefaultMaxFrameSize,
	}
}

// DefaultAddress is where the server listens for TCP by default.
const DefaultAddress = "127.0.0.1:4020"

// WithAddress sets the server's TCP address, "host:port" (default DefaultAddress).
func WithAddress(address string) Option {
	return func(o *options) error {
		o.network, o.address = "tcp", address
		return nil
	}
}

// WithUnixSocket sends to the server's Unix socket (its --unix_socket PATH) instead of TCP.
func WithUnixSocket(path string) Option {
	return func(o *options) error {
		o.network, o.address = "unix", path
		return nil
	}
}

// WithServiceName fills service_name of every message made by Log and the handlers.
func WithServiceName(name string) Option {
	return func(o *options) error { o.serviceName = name; return nil }
}

// WithLoggerName fills logger_name of every message made by Log and the handlers (a
// handler's own HandlerOptions.LoggerName takes precedence).
func WithLoggerName(name string) Option {
	return func(o *options) error { o.loggerName = name; return nil }
}

// WithHostname replaces os.Hostname() in the messages made by Log and the handlers.
func WithHostname(name string) Option {
	return func(o *options) error { o.hostname = name; return nil }
}

// WithQueueSize bounds the messages held by the client: queued, and in acknowledged mode
// also sent but not yet acknowledged (default 100,000).
func WithQueueSize(messages int) Option {
	return func(o *options) error {
		if messages < 1 {
			return errors.New("logserver: queue size must be at least 1")
		}
		o.queueSize = messages
		return nil
	}
}

// WithQueueBytes bounds the encoded bytes the queue holds (default 64 MiB); one message
// is always accepted into an empty queue, whatever its size.
func WithQueueBytes(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return errors.New("logserver: queue bytes must be at least 1")
		}
		o.queueBytes = n
		return nil
	}
}

// WithBlockOnFull makes Send wait up to timeout for room when the queue is full, then
// fail with ErrQueueFull (timeout 0: wait until Close). The default is not to wait: the
// message is dropped, counted in Stats().Dropped, and Send returns ErrQueueFull.
func WithBlockOnFull(timeout time.Duration) Option {
	return func(o *options) error {
		o.block, o.blockTimeout = true, timeout
		return nil
	}
}

// WithDialTimeout bounds one connection attempt, the acknowledged-mode hello included
// (default 5 s).
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) error { o.dialTimeout = d; return nil }
}

// WithWriteTimeout bounds one batch write (default 30 s); past it the connection is
// dropped and the batch sent again on a new one.
func WithWriteTimeout(d time.Duration) Option {
	return func(o *options) error { o.writeTimeout = d; return nil }
}

// WithReconnectBackoff sets the wait after a failed connection attempt: min at first,
// doubling up to max (defaults 50 ms and 5 s).
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min {
			return errors.New("logserver: reconnect backoff needs 0 < min <= max")
		}
		o.backoffMin, o.backoffMax = min, max
		return nil
	}
}

// DefaultMaxFrameSize is the server's default --max_frame_size (10 MiB, as the original
// project's server).
const DefaultMaxFrameSize = 10 << 20

// WithMaxFrameSize sets the largest frame the client sends (default DefaultMaxFrameSize;
// set it to the server's --max_frame_size, at most 1 GiB). The server closes a connection
// on a longer frame, so the client drops such a message instead of sending it: it is
// counted in Stats().Dropped, and Stats().LastError is an ErrMessageTooLarge.
func WithMaxFrameSize(bytes int) Option {
	return func(o *options) error {
		if bytes < 1 || bytes > 1<<30 {
			return errors.New("logserver: max frame size must be between 1 byte and 1 GiB")
		}
		o.maxFrameSize = bytes
		return nil
	}
}

// WithAck turns on acknowledged mode (docs/protocol.md): the client keeps every message
// until the server reports it on disk and sends it again after a reconnect, so a server
// killed or restarted loses nothing (at least once: a resent message can appear twice).
// Flush and Close then wait for the acknowledgements.
func WithAck() Option {
	return func(o *options) error { o.ack = true; return nil }
}

// WithHello opens every connection, and every reconnection, with a HelloMsg frame, which
// the original project's server requires before any message (it drops the messages of a
// connection without one). Use it only against that server: log_server recognises the
// hello and ignores it, and does not need it. fromName is the service name (else the
// logger name, else "log_server_client"), fromHost the hostname (WithHostname), and
// fromAddress and toAddress the connection's local and remote addresses. The original
// server never writes to the socket, so New refuses WithHello together with WithAck.
func WithHello() Option {
	return func(o *options) error { o.hello = true; return nil }
}
