package logserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// Health is the server's answer to the health word (docs/protocol.md, "Health").
type Health struct {
	// Status is "OK" or "DEGRADED".
	Status string
	// Fields are the line's key=value pairs: uptime, received, written, queued,
	// connections, and reason when degraded.
	Fields map[string]string
	// Line is the answer as received, without its newline.
	Line string
}

// OK reports whether the server is writing normally.
func (h *Health) OK() bool { return h.Status == "OK" }

// Health asks the server for its state on a connection of its own (the dial timeout
// applies when ctx has no deadline).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.o.dialTimeout)
		defer cancel()
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, c.o.network, c.o.address)
	if err != nil {
		return nil, fmt.Errorf("logserver: health: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write([]byte("health\n")); err != nil {
		return nil, fmt.Errorf("logserver: health: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("logserver: health: no answer from %s: %w", c.o.address, err)
	}
	return parseHealth(strings.TrimRight(line, "\r\n"))
}

// parseHealth reads `STATUS LogServer k=v k="quoted v" ...`.
func parseHealth(line string) (*Health, error) {
	status, rest, _ := strings.Cut(line, " ")
	if status != "OK" && status != "DEGRADED" {
		return nil, fmt.Errorf("logserver: health: unexpected answer %q", line)
	}
	h := &Health{Status: status, Fields: map[string]string{}, Line: line}
	_, rest, _ = strings.Cut(rest, " ")
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			value, rest = cutQuoted(after[1:])
		} else {
			value, rest, _ = strings.Cut(after, " ")
		}
		h.Fields[key] = value
	}
	return h, nil
}

// cutQuoted splits at the quote that ends a value: one followed by a space or the end of
// the line (the server does not escape quotes inside a reason).
func cutQuoted(s string) (value, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' && (i+1 == len(s) || s[i+1] == ' ') {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
