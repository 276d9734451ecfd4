package logserver_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/log-server/log_server/clients/go/internal/testserver"
	"github.com/log-server/log_server/clients/go/logserver"
)

// slogHarness connects a fresh handler per slogtest case to an in-process server and
// reads back what arrived, as the map slogtest wants: time, level, msg, and the dotted
// attribute keys unfolded into nested groups.
type slogHarness struct {
	mu      sync.Mutex
	servers map[*testing.T]*testserver.Server
	clients map[*testing.T]*logserver.Client
}

func TestSlogtest(t *testing.T) {
	h := &slogHarness{servers: map[*testing.T]*testserver.Server{}, clients: map[*testing.T]*logserver.Client{}}
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
		c := newClient(t, logserver.WithAddress(srv.Addr))
		h.mu.Lock()
		h.servers[t], h.clients[t] = srv, c
		h.mu.Unlock()
		return logserver.NewHandler(c, nil)
	}, func(t *testing.T) map[string]any {
		h.mu.Lock()
		srv, c := h.servers[t], h.clients[t]
		h.mu.Unlock()
		flush(t, c)
		msgs := srv.WaitMessages(1, waitLong)
		return asSlogtestMap(t, msgs[len(msgs)-1])
	})
}

func asSlogtestMap(t *testing.T, m *logserver.Message) map[string]any {
	out := map[string]any{slog.LevelKey: m.Level.String(), slog.MessageKey: m.Message}
	if m.Timestamp != "" {
		out[slog.TimeKey] = m.Timestamp
	}
	for _, a := range m.Attributes {
		parts := strings.Split(a.Key, ".")
		group := out
		for _, p := range parts[:len(parts)-1] {
			inner, ok := group[p].(map[string]any)
			if !ok {
				inner = map[string]any{}
				group[p] = inner
			}
			group = inner
		}
		group[parts[len(parts)-1]] = a.Value
	}
	return out
}

type token string

func (token) LogValue() slog.Value { return slog.StringValue("***") }

func TestHandlerFields(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithServiceName("svc"), logserver.WithHostname("box"))
	logger := slog.New(logserver.NewHandler(c, &logserver.HandlerOptions{Level: slog.LevelDebug, LoggerName: "app"}))
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	_, _, line, _ := runtime.Caller(0)
	logger.With("a", 1, slog.Group("req", "method", "GET")).WithGroup("g").Info("hello",
		"n", 2.5, "ok", true, "d", 1500*time.Millisecond, "at", at, "err", errors.New("boom"),
		"secret", token("x"), slog.Group("h", "k", "v"), slog.Group("empty"), slog.Group("", "inline", "i"))
	flush(t, c)
	m := srv.WaitMessages(1, waitLong)[0]
	if m.Filename != "handler_test.go" || !strings.HasSuffix(m.PathName, "/logserver/handler_test.go") ||
		m.FunctionName != "TestHandlerFields" || m.LineNumber != strconv.Itoa(line+1) ||
		m.Module != "github.com/log-server/log_server/clients/go/logserver_test" {
		t.Errorf("source fields: file %q path %q function %q line %q module %q",
			m.Filename, m.PathName, m.FunctionName, m.LineNumber, m.Module)
	}
	if m.Level != logserver.LevelInfo || m.LoggerName != "app" || m.ServiceName != "svc" || m.Hostname != "box" ||
		m.Message != "hello" || m.Timestamp == "" {
		t.Errorf("fields %+v", m)
	}
	want := []logserver.Attribute{
		{Key: "a", Value: "1"}, {Key: "req.method", Value: "GET"},
		{Key: "g.n", Value: "2.5"}, {Key: "g.ok", Value: "true"}, {Key: "g.d", Value: "1.5s"},
		{Key: "g.at", Value: "2026-12-01T10:00:00.123456789Z"}, {Key: "g.err", Value: "boom"},
		{Key: "g.secret", Value: "***"}, {Key: "g.h.k", Value: "v"}, {Key: "g.inline", Value: "i"},
	}
	if len(m.Attributes) != len(want) {
		t.Fatalf("attributes %q, want %q", m.Attributes, want)
	}
	for i := range want {
		if m.Attributes[i] != want[i] {
			t.Errorf("attribute %d: got %q, want %q", i, m.Attributes[i], want[i])
		}
	}
}

func TestHandlerLevelsAndOptions(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr))
	logger := slog.New(logserver.NewHandler(c, &logserver.HandlerOptions{Level: slog.LevelWarn, NoSource: true}))
	logger.Info("filtered out")
	logger.Warn("w")
	logger.Error("e")
	logger.Log(context.Background(), slog.LevelError+4, "c")
	flush(t, c)
	msgs := srv.WaitMessages(3, waitLong)
	got := []string{}
	for _, m := range msgs {
		got = append(got, m.Message+"="+m.Level.String())
		if m.Filename != "" || m.LineNumber != "" || m.FunctionName != "" {
			t.Errorf("NoSource: %+v", m)
		}
	}
	if strings.Join(got, " ") != "w=WARNING e=ERROR c=CRITICAL" {
		t.Fatalf("got %v", got)
	}
	mapped := slog.New(logserver.NewHandler(c, &logserver.HandlerOptions{
		MapLevel: func(slog.Level) logserver.Level { return logserver.LevelTrade },
	}))
	mapped.Info("t")
	flush(t, c)
	if m := srv.WaitMessages(4, waitLong)[3]; m.Level != logserver.LevelTrade {
		t.Fatalf("MapLevel: %v", m.Level)
	}
}

func TestSlogLevelMapping(t *testing.T) {
	cases := map[slog.Level]logserver.Level{
		slog.LevelDebug - 4: logserver.LevelDebug, slog.LevelDebug: logserver.LevelDebug,
		slog.LevelInfo - 1: logserver.LevelDebug, slog.LevelInfo: logserver.LevelInfo,
		slog.LevelInfo + 2: logserver.LevelInfo, slog.LevelWarn: logserver.LevelWarning,
		slog.LevelError - 1: logserver.LevelWarning, slog.LevelError: logserver.LevelError,
		slog.LevelError + 3: logserver.LevelError, slog.LevelError + 4: logserver.LevelCritical,
	}
	for in, want := range cases {
		if got := logserver.SlogLevel(in); got != want {
			t.Errorf("SlogLevel(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestWriterForStandardLog(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithServiceName("svc"))
	std := log.New(logserver.NewWriter(c, logserver.LevelWarning), "", 0)
	std.Print("first line")
	std.Printf("two\nlines")
	flush(t, c)
	msgs := srv.WaitMessages(2, waitLong)
	if msgs[0].Message != "first line" || msgs[1].Message != "two\nlines" || msgs[0].Level != logserver.LevelWarning ||
		msgs[0].ServiceName != "svc" || msgs[0].Timestamp == "" {
		t.Fatalf("got %+v / %+v", msgs[0], msgs[1])
	}
}

// The sender encodes a message after Write or Send returned, so the client must hold its
// own copy of whatever the caller may change afterwards: the bytes given to Write (the
// log package reuses its buffer) and the Attributes slice given to Send.
func TestQueuedMessagesKeepTheCallersData(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr))
	w := logserver.NewWriter(c, logserver.LevelInfo)
	const n = 300
	buf := make([]byte, 0, 64)
	attrs := make([]logserver.Attribute, 1)
	for i := 0; i < n; i++ {
		buf = append(buf[:0], "line "+strconv.Itoa(i)...)
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
		copy(buf, "XXXX")
		attrs[0] = logserver.Attribute{Key: "i", Value: strconv.Itoa(i)}
		if err := c.Send(&logserver.Message{Message: "send", Attributes: attrs}); err != nil {
			t.Fatal(err)
		}
		attrs[0] = logserver.Attribute{Key: "changed", Value: "after Send"}
	}
	flush(t, c)
	msgs := srv.WaitMessages(2*n, waitLong)
	for i := 0; i < n; i++ {
		written, sent := msgs[2*i], msgs[2*i+1]
		if written.Message != "line "+strconv.Itoa(i) {
			t.Fatalf("message %d from Write: %q", i, written.Message)
		}
		if len(sent.Attributes) != 1 || sent.Attributes[0] != (logserver.Attribute{Key: "i", Value: strconv.Itoa(i)}) {
			t.Fatalf("message %d from Send: attributes %+v", i, sent.Attributes)
		}
	}
}

// The sender encodes records of every kind one after another with one builder: no field
// of one message may leak into the next (source location into a Log message, a thread id
// given to Send into a handler's message).
func TestMixedMessagesKeepTheirOwnFields(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr))
	logger := slog.New(logserver.NewHandler(c, nil))
	for i := 0; i < 50; i++ {
		logger.Info("from slog")
		_ = c.Log(logserver.LevelInfo, "from Log")
		_ = c.Send(&logserver.Message{Message: "from Send", ThreadID: "7", StackTrace: "trace"})
	}
	flush(t, c)
	for i, m := range srv.WaitMessages(150, waitLong) {
		switch want := []string{"from slog", "from Log", "from Send"}[i%3]; {
		case m.Message != want:
			t.Fatalf("message %d: %q, want %q", i, m.Message, want)
		case want == "from slog" && (m.Filename != "handler_test.go" || m.ThreadID != "" || m.StackTrace != ""):
			t.Fatalf("message %d from slog: %+v", i, m)
		case want == "from Log" && (m.Filename != "" || m.LineNumber != "" || m.ThreadID != "" || m.StackTrace != ""):
			t.Fatalf("message %d from Log: %+v", i, m)
		case want == "from Send" && (m.Filename != "" || m.Hostname != "" || m.ThreadID != "7"):
			t.Fatalf("message %d from Send: %+v", i, m)
		}
	}
}
