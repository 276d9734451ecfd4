// Command conformance is the Go client's program for the interop harness (tests/interop,
// contract in schema/vectors/README.md): it sends the shared vectors (to log_server, or
// with the HelloMsg to the original project's server), survives a server restart in
// acknowledged mode, or reports a server that is down, and says how it went with its exit
// code (0 done, 1 failed, 2 bad arguments, 3 undelivered when down).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/log-server/log_server/clients/go/internal/vectors"
	"github.com/log-server/log_server/clients/go/logserver"
)

const (
	exitFailed      = 1
	exitUsage       = 2
	exitUndelivered = 3
)

type failure struct {
	code int
	err  error
}

func main() {
	scenario := flag.String("scenario", "", "vectors, original, restart or down")
	transport := flag.String("transport", "tcp", "tcp (the only transport of this client)")
	address := flag.String("address", "", "the server's HOST:PORT")
	vectorsPath := flag.String("vectors", "", "schema/vectors/vectors.json (vectors, original)")
	count := flag.Int("count", 100, "messages to send (restart)")
	hello := flag.Bool("hello", false, "open every connection with a HelloMsg (implied by original; not with restart)")
	flag.Parse()
	f := run(*scenario, *transport, *address, *vectorsPath, *count, *hello)
	if f != nil {
		fmt.Fprintln(os.Stderr, "conformance:", f.err)
		os.Exit(f.code)
	}
}

func run(scenario, transport, address, vectorsPath string, count int, hello bool) *failure {
	switch {
	case transport != "tcp":
		return &failure{exitUsage, fmt.Errorf("transport %q: the Go client speaks tcp only", transport)}
	case address == "":
		return &failure{exitUsage, errors.New("--address HOST:PORT is required")}
	}
	var opts []logserver.Option
	if hello {
		opts = append(opts, logserver.WithHello())
	}
	switch scenario {
	case "vectors", "original":
		if vectorsPath == "" {
			return &failure{exitUsage, errors.New("--vectors PATH is required")}
		}
		if scenario == "original" && !hello {
			// The original project's server drops the messages of a connection without it.
			opts = append(opts, logserver.WithHello())
		}
		return sendVectors(address, vectorsPath, opts...)
	case "restart":
		if hello {
			return &failure{exitUsage, errors.New("--hello: restart needs acknowledged mode, which the hello excludes")}
		}
		return restart(address, count)
	case "down":
		return down(address, opts...)
	default:
		return &failure{exitUsage, fmt.Errorf("--scenario %q: one of vectors, original, restart, down", scenario)}
	}
}

// sendVectors sends every case's fields as given, in file order, on one client (with the
// extra options: WithHello for the original server).
func sendVectors(address, path string, opts ...logserver.Option) *failure {
	f, err := vectors.Load(path)
	if err != nil {
		return &failure{exitFailed, err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := logserver.Dial(ctx, append(opts, logserver.WithAddress(address), logserver.WithBlockOnFull(0))...)
	if err != nil {
		return &failure{exitFailed, err}
	}
	for i := range f.Cases {
		m, err := f.Cases[i].Message()
		if err == nil {
			err = c.Send(m)
		}
		if err != nil {
			_ = c.Close(ctx)
			return &failure{exitFailed, fmt.Errorf("case %q: %w", f.Cases[i].Name, err)}
		}
	}
	if err := c.Close(ctx); err != nil {
		return &failure{exitFailed, err}
	}
	return nil
}

// restart sends count messages about 2 ms apart in acknowledged mode and ends once the
// server has acknowledged every one, through however many restarts (60 s at most).
func restart(address string, count int) *failure {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := logserver.Dial(ctx, logserver.WithAddress(address), logserver.WithAck(),
		logserver.WithLoggerName("conformance"), logserver.WithBlockOnFull(0),
		logserver.WithReconnectBackoff(20*time.Millisecond, time.Second))
	if err != nil {
		return &failure{exitFailed, err}
	}
	for i := 0; i < count; i++ {
		if err := c.Log(logserver.LevelInfo, "restart "+strconv.Itoa(i)); err != nil {
			_ = c.Close(ctx)
			return &failure{exitFailed, fmt.Errorf("message %d: %w", i, err)}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := c.Close(ctx); err != nil {
		return &failure{exitFailed, err}
	}
	return nil
}

// down sends 5 messages where nothing listens and closes with a 2 s deadline: the error
// says what was not delivered.
func down(address string, opts ...logserver.Option) *failure {
	c, err := logserver.New(append(opts, logserver.WithAddress(address))...)
	if err != nil {
		return &failure{exitUsage, err}
	}
	for i := 0; i < 5; i++ {
		if err := c.Log(logserver.LevelInfo, "down "+strconv.Itoa(i)); err != nil {
			return &failure{exitFailed, fmt.Errorf("message %d: %w", i, err)}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var undelivered *logserver.UndeliveredError
	if err := c.Close(ctx); errors.As(err, &undelivered) {
		return &failure{exitUndelivered, err}
	} else if err != nil {
		return &failure{exitFailed, err}
	}
	return &failure{exitFailed, fmt.Errorf("all 5 messages were delivered, but nothing should listen at %s", address)}
}
