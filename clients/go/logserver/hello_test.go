package logserver_test

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/log-server/log_server/clients/go/internal/testserver"
	"github.com/log-server/log_server/clients/go/logserver"
)

// With WithHello the first frame of every connection is a HelloMsg in standard
// (unpacked) single-segment encoding, the original project's server's dialect; the
// packed messages follow it, and a reconnection says hello again.
func TestHelloOpensEveryConnection(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	c := newClient(t, logserver.WithAddress(srv.Addr), logserver.WithHello(),
		logserver.WithServiceName("svc-hello"), logserver.WithLoggerName("lg"), logserver.WithHostname("host-x"),
		logserver.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	_ = c.Log(logserver.LevelInfo, "first")
	flush(t, c)
	srv.WaitMessages(1, waitLong)

	hellos := srv.Hellos()
	if len(hellos) != 1 || hellos[0].Conn != 1 {
		t.Fatalf("hellos %+v, want one on the first connection", hellos)
	}
	h := hellos[0]
	frame := h.Frame
	if got := binary.BigEndian.Uint32(frame); int(got) != len(frame)-4 {
		t.Fatalf("length prefix %d, payload %d bytes", got, len(frame)-4)
	}
	payload := frame[4:]
	if segments := binary.LittleEndian.Uint32(payload) + 1; segments != 1 {
		t.Fatalf("%d segments, want 1 (standard encoding, unpacked)", segments)
	}
	if words := binary.LittleEndian.Uint32(payload[4:]); int(words)*8 != len(payload)-8 {
		t.Fatalf("segment of %d words in %d bytes", words, len(payload)-8)
	}
	root := binary.LittleEndian.Uint64(payload[8:])
	if kind, offset, data, ptrs := root&3, int32(uint32(root))>>2, (root>>32)&0xffff, root>>48; kind != 0 || offset != 0 || data != 0 || ptrs != 5 {
		t.Fatalf("root pointer kind %d offset %d, %d data words, %d pointers; want a struct of 0 data words, 5 pointers",
			kind, offset, data, ptrs)
	}
	host, port, err := net.SplitHostPort(h.FromAddress)
	if err != nil || host != "127.0.0.1" || port == "0" || h.FromAddress == srv.Addr {
		t.Errorf("fromAddress %q, want the client's local ip:port", h.FromAddress)
	}
	if h.FromName != "svc-hello" || h.FromHost != "host-x" || h.ToAddress != srv.Addr || h.FromPublicIP != "" {
		t.Errorf("hello %+v", h)
	}

	srv.Restart()
	deadline := time.Now().Add(waitLong)
	for i := 0; len(srv.Messages()) < 2; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("nothing arrived after the restart; stats %+v", c.Stats())
		}
		_ = c.Log(logserver.LevelInfo, "after "+strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond)
	}
	if hellos := srv.Hellos(); len(hellos) != srv.Accepted() {
		t.Fatalf("%d hellos on %d connections", len(hellos), srv.Accepted())
	}
	if got := srv.Hellos()[1]; got.Conn != 2 || got.FromAddress == h.FromAddress {
		t.Errorf("second hello %+v", got)
	}
}

func TestHelloNameFallsBackToLoggerNameThenDefault(t *testing.T) {
	for _, tc := range []struct {
		opts []logserver.Option
		want string
	}{
		{[]logserver.Option{logserver.WithLoggerName("lg")}, "lg"},
		{nil, "log_server_client"},
	} {
		srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
		c := newClient(t, append(tc.opts, logserver.WithAddress(srv.Addr), logserver.WithHello())...)
		_ = c.Log(logserver.LevelInfo, "m")
		flush(t, c)
		srv.WaitMessages(1, waitLong)
		if h := srv.Hellos(); len(h) != 1 || h[0].FromName != tc.want {
			t.Errorf("hellos %+v, want fromName %q", h, tc.want)
		}
	}
}

// The original server never writes to the socket, so acknowledged mode cannot work there.
func TestHelloRefusesAckMode(t *testing.T) {
	for _, opts := range [][]logserver.Option{
		{logserver.WithHello(), logserver.WithAck()},
		{logserver.WithAck(), logserver.WithHello()},
	} {
		if c, err := logserver.New(opts...); err == nil {
			_ = c.Close(context.Background())
			t.Error("WithHello with WithAck accepted")
		}
	}
}
