package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/log-server/log_server/clients/go/internal/testserver"
	"github.com/log-server/log_server/clients/go/internal/vectors"
)

// The harness runs this program against the real server (tests/interop); these run its
// scenarios against the in-process server of the unit tests.

func TestVectorsScenarioSendsEveryCaseInOrder(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	path := filepath.Join("..", "..", "testdata", "vectors_fixture.json")
	if f := run("vectors", "tcp", srv.Addr, path, 0, false); f != nil {
		t.Fatal(f.err)
	}
	file, err := vectors.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := srv.WaitMessages(len(file.Cases), 10*time.Second)
	for i := range file.Cases {
		want, _ := file.Cases[i].Message()
		if diff := vectors.Diff(want, got[i]); diff != "" {
			t.Errorf("case %s: %s", file.Cases[i].Name, diff)
		}
	}
	if srv.Accepted() != 1 {
		t.Errorf("%d connections, want one", srv.Accepted())
	}
}

func TestRestartScenarioDeliversAcrossARestart(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", true)
	done := make(chan *failure, 1)
	go func() { done <- run("restart", "tcp", srv.Addr, "", 300, false) }()
	srv.WaitMessages(50, 10*time.Second)
	srv.HoldAcks.Store(true) // what arrives now is unacknowledged when the server goes
	time.Sleep(20 * time.Millisecond)
	srv.Restart()
	srv.HoldAcks.Store(false)
	if f := <-done; f != nil {
		t.Fatal(f.err)
	}
	seen := map[string]bool{}
	for _, m := range srv.Messages() {
		seen[m.Message] = true
	}
	for i := 0; i < 300; i++ {
		if !seen["restart "+strconv.Itoa(i)] {
			t.Fatalf("restart %d never arrived", i)
		}
	}
	if srv.Accepted() < 2 {
		t.Fatalf("no reconnect: %d connections", srv.Accepted())
	}
}

func TestDownScenarioExitsThreeWithinItsDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	start := time.Now()
	f := run("down", "tcp", addr, "", 0, false)
	if f == nil || f.code != exitUndelivered || !strings.Contains(f.err.Error(), "5 messages not delivered") {
		t.Fatalf("got %+v", f)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("took %v; the harness allows 10 s", elapsed)
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"vectors", "grpc"}, {"nope", "tcp"}, {"vectors", "tcp"}} {
		if f := run(args[0], args[1], "127.0.0.1:1", "", 0, false); f == nil || f.code != exitUsage {
			t.Errorf("%v: got %+v", args, f)
		}
	}
	if f := run("restart", "tcp", "127.0.0.1:1", "", 0, true); f == nil || f.code != exitUsage {
		t.Errorf("restart --hello: got %+v", f)
	}
}

// Scenario original: the same vectors, on connections that each open with a HelloMsg.
func TestOriginalScenarioSaysHelloThenSendsEveryCase(t *testing.T) {
	srv := testserver.Start(t, "tcp", "127.0.0.1:0", false)
	path := filepath.Join("..", "..", "testdata", "vectors_fixture.json")
	if f := run("original", "tcp", srv.Addr, path, 0, false); f != nil {
		t.Fatal(f.err)
	}
	file, err := vectors.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := srv.WaitMessages(len(file.Cases), 10*time.Second)
	for i := range file.Cases {
		want, _ := file.Cases[i].Message()
		if diff := vectors.Diff(want, got[i]); diff != "" {
			t.Errorf("case %s: %s", file.Cases[i].Name, diff)
		}
	}
	if h := srv.Hellos(); len(h) != 1 || srv.Accepted() != 1 || h[0].FromName != "log_server_client" {
		t.Errorf("hellos %+v on %d connections, want one", h, srv.Accepted())
	}
}
