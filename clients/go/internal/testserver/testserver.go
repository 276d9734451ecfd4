// Package testserver is a small in-process log server for the client's tests: it speaks
// the TCP protocol of docs/protocol.md (frames, health, acknowledged mode) on a real
// socket and keeps every decoded message.
package testserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	capnp "capnproto.org/go/capnp/v3"

	"github.com/log-server/log_server/clients/go/internal/logcapnp"
	"github.com/log-server/log_server/clients/go/logserver"
)

// Hello is a HelloMsg a connection opened with (the original project's dialect), and the
// number of that connection (1 for the first accepted).
type Hello struct {
	Conn                                                     int
	FromName, FromHost, FromAddress, ToAddress, FromPublicIP string
	// Frame is the whole frame as received, length prefix included.
	Frame []byte
}

// Server accepts connections until Stop.
type Server struct {
	Network, Addr string
	// Ack: answer the acknowledged-mode hello (otherwise close such a connection, as a
	// server without the mode does).
	Ack bool
	// HoldAcks: in acknowledged mode, read and keep messages but acknowledge none, as a
	// server killed before its write completed.
	HoldAcks atomic.Bool
	// MaxFrameSize: close a connection whose next frame is longer (0: no limit), as the
	// real server does past --max_frame_size.
	MaxFrameSize atomic.Uint32

	t        testing.TB
	ln       net.Listener
	mu       sync.Mutex
	messages []*logserver.Message
	hellos   []Hello
	conns    map[net.Conn]struct{}
	accepted int
	changed  chan struct{}
	wg       sync.WaitGroup
}

// Start listens on network/addr ("tcp", "127.0.0.1:0" for a free port).
func Start(t testing.TB, network, addr string, ack bool) *Server {
	t.Helper()
	s := &Server{Network: network, Ack: ack, t: t, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	s.listen(addr)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) listen(addr string) {
	s.t.Helper()
	var ln net.Listener
	var err error
	// The port of a stopped server can take a moment to be free again.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ln, err = net.Listen(s.Network, addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		s.t.Fatalf("testserver: listen %s %s: %v", s.Network, addr, err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	s.wg.Add(1)
	go s.accept(ln)
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.accepted++
		n := s.accepted
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(conn, n)
	}
}

// Stop closes the listener and every connection (a server killed).
func (s *Server) Stop() {
	if s.ln != nil {
		_ = s.ln.Close()
	}
	s.DropConnections()
	s.wg.Wait()
	s.ln = nil
}

// Restart stops the server and listens again on the same address, keeping the messages.
func (s *Server) Restart() {
	addr := s.Addr
	s.Stop()
	s.listen(addr)
}

// DropConnections closes the open connections and keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for conn := range s.conns {
		_ = conn.Close()
	}
}

// Accepted counts the connections accepted so far.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Messages returns every message received so far, in arrival order.
func (s *Server) Messages() []*logserver.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*logserver.Message(nil), s.messages...)
}

// Hellos returns the HelloMsgs received so far, in arrival order.
func (s *Server) Hellos() []Hello {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Hello(nil), s.hellos...)
}

// isHello tells a HelloMsg from a LoggerMsg as log_server does: standard encoding, one
// segment, a root struct without data words (a LoggerMsg has its level there).
func isHello(payload []byte) bool {
	if len(payload) < 16 || binary.LittleEndian.Uint32(payload) != 0 {
		return false
	}
	ptr := binary.LittleEndian.Uint64(payload[8:])
	return ptr&3 == 0 && (ptr>>32)&0xffff == 0
}

func decodeHello(payload []byte) (Hello, error) {
	msg, err := capnp.Unmarshal(payload)
	if err != nil {
		return Hello{}, err
	}
	root, err := logcapnp.ReadRootHelloMsg(msg)
	if err != nil {
		return Hello{}, err
	}
	var h Hello
	for _, f := range []struct {
		get func() (string, error)
		to  *string
	}{
		{root.FromName, &h.FromName}, {root.FromHost, &h.FromHost}, {root.FromAddress, &h.FromAddress},
		{root.ToAddress, &h.ToAddress}, {root.FromPublicIP, &h.FromPublicIP},
	} {
		if *f.to, err = f.get(); err != nil {
			return Hello{}, err
		}
	}
	return h, nil
}

// WaitMessages waits until at least n messages arrived (failing the test after timeout).
func (s *Server) WaitMessages(n int, timeout time.Duration) []*logserver.Message {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if len(s.messages) >= n {
			msgs := append([]*logserver.Message(nil), s.messages...)
			s.mu.Unlock()
			return msgs
		}
		ch := s.changed
		got := len(s.messages)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			s.t.Fatalf("testserver: %d of %d messages after %v", got, n, timeout)
		}
	}
}

func (s *Server) serve(conn net.Conn, n int) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		_ = conn.Close()
	}()
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return
	}
	acked := false
	switch string(head[:]) {
	case "heal":
		_, _ = fmt.Fprintf(conn, "OK LogServer uptime=1s received=%d written=%d queued=0 connections=1\n",
			len(s.Messages()), len(s.Messages()))
		return
	case "LSAC":
		var rest [4]byte
		if _, err := io.ReadFull(conn, rest[:]); err != nil || string(rest[:]) != "Kv1\n" || !s.Ack {
			return
		}
		if _, err := conn.Write([]byte("LSACKv1\n")); err != nil {
			return
		}
		acked = true
		if _, err := io.ReadFull(conn, head[:]); err != nil {
			return
		}
	}
	var count uint64
	for first := true; ; first = false {
		size := binary.BigEndian.Uint32(head[:])
		if limit := s.MaxFrameSize.Load(); limit > 0 && size > limit {
			return
		}
		if size > 0 {
			payload := make([]byte, size)
			if _, err := io.ReadFull(conn, payload); err != nil {
				return
			}
			if first && !acked && isHello(payload) {
				h, err := decodeHello(payload)
				if err != nil {
					s.t.Errorf("testserver: HelloMsg: %v", err)
					return
				}
				h.Conn, h.Frame = n, append(append([]byte(nil), head[:]...), payload...)
				s.mu.Lock()
				s.hellos = append(s.hellos, h)
				s.mu.Unlock()
				if _, err := io.ReadFull(conn, head[:]); err != nil {
					return
				}
				continue
			}
			msg, err := logserver.Decode(payload)
			if err != nil {
				s.t.Errorf("testserver: %v", err)
				return
			}
			s.mu.Lock()
			s.messages = append(s.messages, msg)
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
			count++
			if acked && !s.HoldAcks.Load() {
				var ack [8]byte
				binary.BigEndian.PutUint64(ack[:], count)
				if _, err := conn.Write(ack[:]); err != nil {
					return
				}
			}
		}
		if _, err := io.ReadFull(conn, head[:]); err != nil {
			return
		}
	}
}
