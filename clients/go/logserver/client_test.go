package logserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/log-server/log_server/clients/go/internal/testserver"
	"github.com/log-server/log_server/clients/go/logserver"
)

const waitLong = 10 * time.Second

func newClient(t *testing.T, opts ...logserver.Option) *logserver.Client {
	t.Helper()
	c, err := logserver.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func flush(t *testing.T, c *logserver.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// An address where nothing listens: a port that was free a moment ago.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestSendDeliversEveryFieldInOrder(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr))
	for i := 0; i < 1000; i++ {
		m := &logserver.Message{
			Timestamp: "2026-12-01T10:00:00.000000+00:00", Hostname: "h", LoggerName: "l",
			Module: "mod", Level: logserver.LevelTrade, Filename: "f.go", FunctionName: "fn",
			LineNumber: "7", Message: "m" + strconv.Itoa(i), PathName: "/p/f.go", ProcessID: "1",
			ProcessName: "pn", ThreadID: "2", ThreadName: "tn", ServiceName: "svc", StackTrace: "st",
			Attributes: []logserver.Attribute{{Key: "i", Value: strconv.Itoa(i)}, {Key: "", Value: ""}},
		}
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, c)
	msgs := srv.WaitMessages(1000, waitLong)
	for i, m := range msgs {
		if m.Message != "m"+strconv.Itoa(i) || m.Attributes[0].Value != strconv.Itoa(i) {
			t.Fatalf("message %d out of order: %+v", i, m)
		}
	}
	want := logserver.Message{
		Timestamp: "2026-12-01T10:00:00.000000+00:00", Hostname: "h", LoggerName: "l",
		Module: "mod", Level: logserver.LevelTrade, Filename: "f.go", FunctionName: "fn",
		LineNumber: "7", Message: "m999", PathName: "/p/f.go", ProcessID: "1",
		ProcessName: "pn", ThreadID: "2", ThreadName: "tn", ServiceName: "svc", StackTrace: "st",
		Attributes: []logserver.Attribute{{Key: "i", Value: "999"}, {Key: "", Value: ""}},
	}
	if got := *msgs[999]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if s := c.Stats(); s.Accepted != 1000 || s.Delivered != 1000 || s.Queued != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLogFillsProcessFields(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithServiceName("svc"),
		logserver.WithLoggerName("lg"), logserver.WithHostname("box"))
	before := time.Now().UTC()
	if err := c.Log(logserver.LevelWarning, "hi", logserver.Attribute{Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	m := srv.WaitMessages(1, waitLong)[0]
	stamp, err := time.Parse(logserver.TimestampLayout, m.Timestamp)
	if err != nil || stamp.Before(before.Truncate(time.Microsecond)) || m.Timestamp[len(m.Timestamp)-6:] != "+00:00" {
		t.Fatalf("timestamp %q (%v)", m.Timestamp, err)
	}
	if m.Hostname != "box" || m.ServiceName != "svc" || m.LoggerName != "lg" || m.Level != logserver.LevelWarning ||
		m.ProcessID != strconv.Itoa(os.Getpid()) || m.ProcessName != filepath.Base(os.Args[0]) ||
		m.Message != "hi" || len(m.Attributes) != 1 || m.Attributes[0] != (logserver.Attribute{Key: "k", Value: "v"}) {
		t.Fatalf("fields %+v", m)
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	srv := testserver.Start(t, "unix", path, false)
	c := newClient(t, logserver.WithUnixSocket(path))
	if err := c.Log(logserver.LevelInfo, "over unix"); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	if m := srv.WaitMessages(1, waitLong)[0]; m.Message != "over unix" {
		t.Fatalf("got %+v", m)
	}
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	_ = c.Log(logserver.LevelInfo, "before")
	flush(t, c)
	srv.WaitMessages(1, waitLong)
	srv.Restart()
	// The client notices the close from its reader; until then a message may go into the
	// dead connection (no acknowledged mode), so keep sending until one arrives.
	deadline := time.Now().Add(waitLong)
	for i := 0; len(srv.Messages()) < 2; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("nothing arrived after the restart; stats %+v", c.Stats())
		}
		_ = c.Log(logserver.LevelInfo, "after "+strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond)
	}
	if srv.Accepted() < 2 {
		t.Fatalf("expected a new connection, %d accepted", srv.Accepted())
	}
}

func TestAckModeResendsWhatWasNotAcknowledged(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", true)
	srv.HoldAcks.Store(true)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithAck(),
		logserver.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	for i := 0; i < 10; i++ {
		if err := c.Log(logserver.LevelInfo, "m"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	srv.WaitMessages(10, waitLong)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var undelivered *logserver.UndeliveredError
	if err := c.Flush(short); !errors.As(err, &undelivered) || undelivered.Count != 10 {
		t.Fatalf("flush without acknowledgements: %v", err)
	}
	srv.HoldAcks.Store(false)
	srv.DropConnections()
	flush(t, c)
	msgs := srv.Messages()
	if len(msgs) != 20 {
		t.Fatalf("want the 10 sent again after the reconnect, got %d messages", len(msgs))
	}
	for i := 0; i < 10; i++ {
		if msgs[10+i].Message != "m"+strconv.Itoa(i) {
			t.Fatalf("resent out of order: %d is %q", i, msgs[10+i].Message)
		}
	}
	if s := c.Stats(); s.Delivered != 10 || s.Queued != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAckModeRefusedByServerWithoutIt(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := logserver.Dial(ctx, logserver.WithAddress(srv.Addr), logserver.WithAck())
	if err == nil || !contains(err.Error(), "does not support acknowledged mode") {
		t.Fatalf("got %v", err)
	}
}

func TestDialFailsWhenServerDown(t *testing.T) {
	addr := deadAddress(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := logserver.Dial(ctx, logserver.WithAddress(addr))
	if err == nil || !contains(err.Error(), "connection refused") {
		t.Fatalf("got %v", err)
	}
}

func TestDropsWhenQueueFull(t *testing.T) {
	c := newClient(t, logserver.WithAddress(deadAddress(t)), logserver.WithQueueSize(10))
	var full int
	for i := 0; i < 25; i++ {
		if err := c.Log(logserver.LevelInfo, "x"); errors.Is(err, logserver.ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); full != 15 || s.Dropped != 15 || s.Accepted != 10 {
		t.Fatalf("%d refused, stats %+v", full, s)
	}
}

func TestQueueBytesBound(t *testing.T) {
	c := newClient(t, logserver.WithAddress(deadAddress(t)), logserver.WithQueueBytes(1000))
	big := strings.Repeat("x", 600)
	if err := c.Log(logserver.LevelInfo, big); err != nil {
		t.Fatalf("an empty queue takes any message: %v", err)
	}
	if err := c.Log(logserver.LevelInfo, big); !errors.Is(err, logserver.ErrQueueFull) {
		t.Fatalf("got %v", err)
	}
}

func TestBlockOnFullWaitsThenFails(t *testing.T) {
	c := newClient(t, logserver.WithAddress(deadAddress(t)), logserver.WithQueueSize(1),
		logserver.WithBlockOnFull(50*time.Millisecond))
	if err := c.Log(logserver.LevelInfo, "first"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Log(logserver.LevelInfo, "second"); !errors.Is(err, logserver.ErrQueueFull) {
		t.Fatalf("got %v", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("returned after %v, before the block timeout", waited)
	}
}

func TestBlockOnFullProceedsWhenRoomComes(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithQueueSize(2), logserver.WithBlockOnFull(0))
	for i := 0; i < 200; i++ {
		if err := c.Log(logserver.LevelInfo, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, c)
	if n := len(srv.WaitMessages(200, waitLong)); n != 200 || c.Stats().Dropped != 0 {
		t.Fatalf("%d messages, stats %+v", n, c.Stats())
	}
}

func TestCloseWithServerDownEndsAtDeadline(t *testing.T) {
	addr := deadAddress(t)
	c, err := logserver.New(logserver.WithAddress(addr))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_ = c.Log(logserver.LevelInfo, "lost")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Close(ctx)
	var undelivered *logserver.UndeliveredError
	if !errors.As(err, &undelivered) || undelivered.Count != 5 || !contains(err.Error(), "connection refused") ||
		!contains(err.Error(), addr) {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error does not wrap the deadline: %v", err)
	}
	// A bound, not a speed check: Close must not outlive its deadline by much.
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("Close took %v with a 200ms deadline", elapsed)
	}
	if err := c.Log(logserver.LevelInfo, "late"); !errors.Is(err, logserver.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestCloseInterruptsAStalledWrite(t *testing.T) {
	// A peer that accepts and never reads: the client's writes block once the socket
	// buffers are full.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			defer conn.Close()
			time.Sleep(waitLong)
		}
	}()
	c, err := logserver.New(logserver.WithAddress(ln.Addr().String()), logserver.WithQueueBytes(256<<20))
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", 64<<10)
	for i := 0; i < 400; i++ {
		_ = c.Log(logserver.LevelInfo, payload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var undelivered *logserver.UndeliveredError
	if err := c.Close(ctx); !errors.As(err, &undelivered) {
		t.Fatalf("got %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("Close took %v with a 200ms deadline", elapsed)
	}
}

func TestConcurrentSendersKeepTheirOrder(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", true)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithAck(), logserver.WithBlockOnFull(0),
		logserver.WithQueueSize(100))
	const senders, each = 8, 500
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := c.Log(logserver.LevelInfo, strconv.Itoa(i), logserver.Attribute{Key: "g", Value: strconv.Itoa(g)})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { _ = c.Stats() }()
	wg.Wait()
	flush(t, c)
	next := map[string]int{}
	for _, m := range srv.WaitMessages(senders*each, waitLong) {
		g := m.Attributes[0].Value
		if m.Message != strconv.Itoa(next[g]) {
			t.Fatalf("sender %s: got %q, want %d", g, m.Message, next[g])
		}
		next[g]++
	}
}

func TestHealth(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr))
	h, err := c.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !h.OK() || h.Fields["connections"] != "1" || h.Fields["queued"] != "0" {
		t.Fatalf("got %+v", h)
	}
	down := newClient(t, logserver.WithAddress(deadAddress(t)))
	if _, err := down.Health(context.Background()); err == nil {
		t.Fatal("health of a server that is down succeeded")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestCloseWakesASendBlockedForRoom(t *testing.T) {
	// A server that takes the message and never acknowledges it: nothing else moves.
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", true)
	srv.HoldAcks.Store(true)
	c, err := logserver.New(logserver.WithAddress(srv.Addr), logserver.WithAck(), logserver.WithQueueSize(1),
		logserver.WithBlockOnFull(0))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Log(logserver.LevelInfo, "fills the queue")
	srv.WaitMessages(1, waitLong)
	blocked := make(chan error, 1)
	go func() { blocked <- c.Log(logserver.LevelInfo, "waits for room") }()
	time.Sleep(50 * time.Millisecond)
	// Close waits up to 5 s for the acknowledgement; the blocked Send must not wait with it.
	closed := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		defer close(closed)
		_ = c.Close(ctx)
	}()
	select {
	case err := <-blocked:
		if !errors.Is(err, logserver.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a Send blocked for room stayed blocked while Close waited")
	}
	cancel()
	<-closed
}

// A server closes the connection on a frame past its --max_frame_size, so sending one
// again and again after each reconnect (acknowledged mode resends what was not
// acknowledged) would stall everything behind it. The client drops such a message,
// counts it and says why; the next message goes through.
func TestMessageBeyondMaxFrameSizeIsDropped(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", true)
	srv.MaxFrameSize.Store(logserver.DefaultMaxFrameSize)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithAck(),
		logserver.WithReconnectBackoff(10*time.Millisecond, 10*time.Millisecond))
	if err := c.Log(logserver.LevelInfo, strings.Repeat("x", 2*logserver.DefaultMaxFrameSize)); err != nil {
		t.Fatal(err)
	}
	if err := c.Log(logserver.LevelInfo, "after the big one"); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	msgs := srv.WaitMessages(1, waitLong)
	if len(msgs) != 1 || msgs[0].Message != "after the big one" {
		t.Fatalf("the server got %d messages, the first %.40q", len(msgs), msgs[0].Message)
	}
	s := c.Stats()
	if s.Dropped != 1 || s.Delivered != 1 || !errors.Is(s.LastError, logserver.ErrMessageTooLarge) {
		t.Fatalf("stats %+v", s)
	}
	t.Log(s.LastError)
}

func TestMaxFrameSizeOption(t *testing.T) {
	for _, n := range []int{0, -1, 1<<30 + 1} {
		if _, err := logserver.New(logserver.WithMaxFrameSize(n)); err == nil {
			t.Errorf("WithMaxFrameSize(%d) accepted", n)
		}
	}
}
