package main

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/log-server/log_server/clients/go/internal/testserver"
	"github.com/log-server/log_server/clients/go/logserver"
)

// The example, run against an in-process server in acknowledged mode, delivers its four
// messages with their attributes.
func TestExampleDelivers(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", true)
	if err := run(srv.Addr, true); err != nil {
		t.Fatal(err)
	}
	msgs := srv.WaitMessages(4, 10*time.Second)
	want := []string{"example started", "slow request", "details", "from the standard log package"}
	for i, m := range msgs[:4] {
		if m.Message != want[i] || m.ServiceName != "example" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	attrs := map[string]string{}
	for _, a := range msgs[1].Attributes {
		attrs[a.Key] = a.Value
	}
	if attrs["req.id"] != "r-17" || attrs["req.method"] != "GET" || attrs["req.took"] != "1.5s" {
		t.Fatalf("attributes of the slow request: %+v", msgs[1].Attributes)
	}
	if msgs[1].Filename != "main.go" || msgs[1].Level.String() != "WARNING" {
		t.Fatalf("source or level: %+v", msgs[1])
	}
}

// With nothing listening, run returns when Close's deadline passes and says what was lost.
func TestExampleServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String() // free a moment ago, nothing listens there now
	_ = ln.Close()
	err = run(addr, false)
	var undelivered *logserver.UndeliveredError
	if !errors.As(err, &undelivered) || undelivered.Count != 4 {
		t.Fatalf("got %v, want 4 undelivered messages", err)
	}
}
