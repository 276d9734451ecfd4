// Command slog is a small program logging through log_server: log/slog's default logger
// and the standard log package both send to the server, and Close delivers what is left
// before the program exits (waiting at most two seconds when the server is down).
//
//	go run ./examples/slog -address 127.0.0.1:4020 -ack
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/log-server/log_server/clients/go/logserver"
)

func main() {
	address := flag.String("address", logserver.DefaultAddress, "the server's HOST:PORT")
	ack := flag.Bool("ack", false, "acknowledged mode: Close waits until the server has the messages on disk")
	flag.Parse()
	if err := run(*address, *ack); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(address string, ack bool) error {
	opts := []logserver.Option{
		logserver.WithAddress(address),
		logserver.WithServiceName("example"),
		logserver.WithLoggerName("example.main"),
	}
	if ack {
		opts = append(opts, logserver.WithAck())
	}
	client, err := logserver.New(opts...)
	if err != nil {
		return err
	}

	logger := slog.New(logserver.NewHandler(client, &logserver.HandlerOptions{Level: slog.LevelDebug}))
	slog.SetDefault(logger)
	slog.Info("example started", "pid", os.Getpid())
	req := logger.WithGroup("req").With("id", "r-17")
	req.Warn("slow request", "method", "GET", "took", 1500*time.Millisecond)
	logger.Debug("details", slog.Group("cache", "hits", 41, "misses", 1))

	std := log.New(logserver.NewWriter(client, logserver.LevelInfo), "", 0)
	std.Printf("from the standard log package")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Close(ctx); err != nil {
		return fmt.Errorf("not everything reached the log server: %w", err)
	}
	return nil
}
