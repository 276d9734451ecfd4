package logserver_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/log-server/log_server/clients/go/logserver"
)

// discardServer accepts connections and reads them into io.Discard: a peer that costs the
// benchmark nothing but the socket.
func discardServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// cpuMeter reports the process's CPU time per operation as cpu-ns/op, over the same
// span as the benchmark's timer.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{b: b, start: processCPU()}
}

func (m *cpuMeter) stop() {
	m.b.StopTimer()
	if used := processCPU() - m.start; used > 0 {
		m.b.ReportMetric(float64(used.Nanoseconds())/float64(m.b.N), "cpu-ns/op")
	}
}

func logTypical(logger *slog.Logger, i int) {
	logger.Info("order placed", "order_id", i, "user", "alice", "amount", 12.5)
}

// BenchmarkSlogInfo: one logger.Info with three attributes through this package's
// handler against slog.NewJSONHandler writing to a file, in the same run. The handler
// always fills the source location, so json-file-source (AddSource) is the like-for-like
// baseline; json-file is the JSON handler's cheapest setting.
//
// logserver times the logging goroutine only, the latency a program sees: Handle queues
// the record and the sender goroutine encodes and writes it concurrently (the queue holds
// all b.N records, so nothing waits or drops). logserver-drained also waits for the
// sender to encode and write every record (Close), so it counts the whole work per
// message when the sender cannot keep up with the loop.
func BenchmarkSlogInfo(b *testing.B) {
	for _, drained := range []bool{false, true} {
		name := "logserver"
		if drained {
			name = "logserver-drained"
		}
		b.Run(name, func(b *testing.B) {
			c, err := logserver.New(logserver.WithAddress(discardServer(b)),
				logserver.WithQueueSize(b.N+1), logserver.WithQueueBytes(1<<30))
			if err != nil {
				b.Fatal(err)
			}
			logger := slog.New(logserver.NewHandler(c, nil))
			b.ReportAllocs()
			cpu := startCPU(b)
			for i := 0; i < b.N; i++ {
				logTypical(logger, i)
			}
			if !drained {
				cpu.stop()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if drained {
				cpu.stop()
			}
			if s := c.Stats(); s.Dropped != 0 || s.Delivered != uint64(b.N) {
				b.Fatalf("stats %+v", s)
			}
		})
	}
	for _, source := range []bool{false, true} {
		name := "json-file"
		if source {
			name = "json-file-source"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log.json"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			logger := slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{AddSource: source}))
			b.ReportAllocs()
			cpu := startCPU(b)
			for i := 0; i < b.N; i++ {
				logTypical(logger, i)
			}
			cpu.stop()
		})
	}
}

// BenchmarkServerThroughput: messages per second one client pushes into the real server
// (delivered: written to the socket, or acknowledged on disk with ack), from the first
// Log to the last one delivered. It needs the server of this checkout (`make test` sets
// up .venv) or LOG_SERVER_BIN; it is skipped without one.
func BenchmarkServerThroughput(b *testing.B) {
	bin := os.Getenv("LOG_SERVER_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "..", ".venv", "bin", "log_server")
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skipf("no log server at %s (run `make test` at the repository root, or set LOG_SERVER_BIN)", bin)
	}
	addr := startServer(b, bin)
	for _, ack := range []bool{false, true} {
		name := "plain"
		opts := []logserver.Option{logserver.WithAddress(addr), logserver.WithBlockOnFull(0)}
		if ack {
			name = "ack"
			opts = append(opts, logserver.WithAck())
		}
		b.Run(name, func(b *testing.B) {
			c, err := logserver.Dial(context.Background(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = c.Log(logserver.LevelInfo, "benchmark message "+strconv.Itoa(i),
					logserver.Attribute{Key: "i", Value: strconv.Itoa(i)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func startServer(b *testing.B, bin string) string {
	cmd := exec.Command(bin, "--port", "0", "--grpc_port", "0", "--log_dir", filepath.Join(b.TempDir(), "logs"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if line := lines.Text(); strings.HasPrefix(line, "log_server ready") {
				for _, field := range strings.Fields(line) {
					if addr, ok := strings.CutPrefix(field, "tcp="); ok {
						ready <- addr
					}
				}
			}
		}
	}()
	select {
	case addr := <-ready:
		return addr
	case <-time.After(30 * time.Second):
		b.Fatal("the log server did not print its ready line within 30 s")
		return ""
	}
}
