package logserver

import "time"

// Writer is an io.Writer for the standard log package: each Write is one message at the
// writer's level, its trailing newline removed, with the fields Client.Log fills.
// Use it with log flags 0 (log.SetFlags(0)): the message carries its own time, and a
// date prefix would only repeat it in the text.
type Writer struct {
	c     *Client
	level Level
}

// NewWriter returns a Writer sending through c at level.
func NewWriter(c *Client, level Level) *Writer { return &Writer{c: c, level: level} }

// Write queues p as one message; the error is Send's (ErrQueueFull, ErrClosed).
func (w *Writer) Write(p []byte) (int, error) {
	b := getBuilder()
	defer putBuilder(b)
	w.c.fillDefaults(b, time.Now())
	b.level = w.level
	text := p
	if n := len(text); n > 0 && text[n-1] == '\n' {
		text = text[:n-1]
	}
	b.texts[tMessage] = string(text) // p is the caller's to reuse once Write returns
	if err := w.c.enqueue(b); err != nil {
		return 0, err
	}
	return len(p), nil
}
