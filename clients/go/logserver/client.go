// Package logserver is a client of log_server's TCP protocol (docs/protocol.md): a
// Client with a bounded queue and a background sender, a log/slog Handler, and an
// io.Writer for the standard log package.
package logserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrQueueFull is returned by Send when the queue had no room (and, with
	// WithBlockOnFull, got none within the timeout); the message is counted in
	// Stats().Dropped.
	ErrQueueFull = errors.New("logserver: queue full, message dropped")
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("logserver: client closed")
	// ErrMessageTooLarge is in Stats().LastError after the sender dropped a message whose
	// frame exceeded the max frame size (WithMaxFrameSize).
	ErrMessageTooLarge = errors.New("logserver: message exceeds the max frame size")
)

// DefaultCloseTimeout bounds Close when its context has no deadline, so that a program
// never hangs on exit while the server is down.
const DefaultCloseTimeout = 5 * time.Second

// ackHello opens an acknowledged connection; the server answers the same 8 bytes.
var ackHello = []byte("LSACKv1\n")

// UndeliveredError says how many messages Flush or Close could not deliver before their
// deadline: not yet written to the server or, in acknowledged mode, not acknowledged.
type UndeliveredError struct {
	Count   uint64
	Address string
	// Err is the context's error; LastErr the last connection error, if there was one.
	Err, LastErr error
}

func (e *UndeliveredError) Error() string {
	s := fmt.Sprintf("logserver: %d messages not delivered to %s", e.Count, e.Address)
	if e.LastErr != nil {
		return s + ": " + e.LastErr.Error()
	}
	return s + " (" + e.Err.Error() + ")"
}

func (e *UndeliveredError) Unwrap() []error { return []error{e.Err, e.LastErr} }

// Stats is a snapshot of a Client's counters.
type Stats struct {
	// Accepted counts the messages Send took; Delivered those written to the server (in
	// acknowledged mode: those the server reported on disk); Queued is the difference.
	Accepted, Delivered uint64
	Queued              uint64
	// Dropped counts messages refused with ErrQueueFull.
	Dropped   uint64
	Connected bool
	LastError error
}

// Client sends messages to a log server from a background goroutine. Send only copies
// the message into the queue; it never encodes and never waits for the network (unless
// WithBlockOnFull, when the queue is full). Safe for concurrent use. Close it before the
// program exits.
//
// A message goes from `pending` (records the sender has not yet taken) through the
// sender's encoding (`encoding` records, taken but not yet framed) into `sent`, one
// buffer of frames (written on the current connection up to writePos, acknowledged up to
// head). Without acknowledged mode a successful write delivers everything written; a
// failed one leaves it for the next connection.
type Client struct {
	o    options
	proc processFields

	mu       sync.Mutex
	wake     *sync.Cond    // the sender waits here for work
	progress chan struct{} // closed and replaced whenever delivery or connection state moves

	pending      []*recordChunk
	pendingCount int
	pendingSize  int // estimated encoded bytes of `pending`
	freeChunks   []*recordChunk
	encoding     int
	encodingSize int
	discarded    uint64 // accepted, then refused by the encoder or too large to send

	// The sender's own: the chunks it encodes while callers fill `pending`, the builder
	// it encodes with and the frames it made.
	taken     []*recordChunk
	encoder   builder
	newFrames []byte
	templates map[templateKey][]byte

	sent          []byte
	head          int // bytes of `sent` already delivered
	writePos      int // bytes of `sent` written on the current connection
	sentCount     int // undelivered frames in `sent`
	unwritten     int // frames of `sent` after writePos
	connWritten   uint64
	connAcked     uint64
	conn          net.Conn
	gen           uint64 // which connection the reader goroutine reports for
	broken        bool
	wantConnect   bool
	closing       bool
	stopped       bool
	accepted      uint64
	delivered     uint64
	lastErr       error
	dropped       atomic.Uint64
	ctx           context.Context
	cancel        context.CancelFunc
	senderStopped chan struct{}
}

// record is one queued message: the caller's strings by reference (Go strings do not
// change), its attributes copied into the chunk's text. A message the client filled
// itself (proc) needs only its logger name and message: the other texts are the client's
// or come from the time and PC. Any other keeps all its texts in the chunk's texts.
type record struct {
	message, loggerName string
	when                time.Time
	pc                  uintptr
	level               Level
	proc                bool
	texts               int32 // index in the chunk's texts, when not proc
	attrs, attrEnd      int32 // its spans in the chunk's spans
}

// recordChunk holds up to chunkRecords records and their attributes' bytes (spans index
// text). The queue is a list of chunks, so that a burst grows it without copying what
// it holds; the sender hands emptied chunks back for reuse.
type recordChunk struct {
	records []record
	texts   [][numTexts]string
	text    []byte
	spans   []span
	size    int // estimated encoded bytes
}

const (
	chunkRecords = 256
	// takeChunks is the most the sender encodes before writing, so that a burst is
	// written as it is encoded and the frame buffers stay small.
	takeChunks = 16
	// maxFreeChunks bounds the emptied chunks kept for reuse after a burst.
	maxFreeChunks = 16
	// maxKeptBuffer: a buffer grown past it by a few huge messages is not kept for reuse.
	maxKeptBuffer = 4 << 20
)

// recordOverhead is about what the encoding adds to a message's texts: the root struct,
// pointers, padding and the frame's length.
const recordOverhead = 160

func (b *builder) encodedSizeEstimate() int {
	n := recordOverhead + len(b.scratch) + 24*len(b.attrs)
	for _, t := range b.texts {
		n += len(t)
	}
	return n
}

type processFields struct {
	hostname, processID, processName, serviceName, loggerName string
}

// New makes a Client and starts its sender; it connects when there is something to send
// (use Dial to connect first). It fails only on bad options (WithHello with WithAck).
func New(opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.hello && o.ack {
		return nil, errors.New("logserver: WithHello and WithAck exclude each other: the original server, which needs the hello, never acknowledges")
	}
	hostname := o.hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	c := &Client{
		o: o,
		proc: processFields{
			hostname:    hostname,
			processID:   strconv.Itoa(os.Getpid()),
			processName: filepath.Base(os.Args[0]),
			serviceName: o.serviceName,
			loggerName:  o.loggerName,
		},
		progress:      make(chan struct{}),
		senderStopped: make(chan struct{}),
	}
	c.wake = sync.NewCond(&c.mu)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// Dial is New, then waits until the first connection is up (in acknowledged mode: the
// server has answered the hello). On failure the client is closed.
func Dial(ctx context.Context, opts ...Option) (*Client, error) {
	c, err := New(opts...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.wantConnect = true
	c.wake.Signal()
	for c.conn == nil || c.broken {
		ch := c.progress
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			lastErr := c.lastErr
			c.mu.Unlock()
			closeCtx, cancel := context.WithTimeout(context.Background(), 0)
			defer cancel()
			_ = c.Close(closeCtx)
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return nil, fmt.Errorf("logserver: cannot connect to %s: %w", c.o.address, lastErr)
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return c, nil
}

// Send queues m exactly as given (no fields filled in). It returns ErrQueueFull when the
// message was dropped for want of room, ErrClosed after Close. The sender encodes it
// later: a message Cap'n Proto cannot encode (a text of 512 MiB), or whose frame exceeds
// the max frame size (WithMaxFrameSize), is then counted in Stats().Dropped and reported
// in Stats().LastError.
func (c *Client) Send(m *Message) error {
	b := getBuilder()
	defer putBuilder(b)
	b.setMessage(m)
	return c.enqueue(b)
}

// Log queues a message with the call time, host, process id and name, and the client's
// service and logger names filled in.
func (c *Client) Log(level Level, message string, attrs ...Attribute) error {
	b := getBuilder()
	defer putBuilder(b)
	c.fillDefaults(b, time.Now())
	b.level = level
	b.texts[tMessage] = message
	for _, a := range attrs {
		b.addAttr(a.Key, a.Value)
	}
	return c.enqueue(b)
}

func (c *Client) fillDefaults(b *builder, t time.Time) {
	b.when = t
	b.proc = true
	b.texts[tHostname] = c.proc.hostname
	b.texts[tProcessID] = c.proc.processID
	b.texts[tProcessName] = c.proc.processName
	b.texts[tServiceName] = c.proc.serviceName
	b.texts[tLoggerName] = c.proc.loggerName
}

// enqueue copies b into the pending queue.
func (c *Client) enqueue(b *builder) error {
	size := b.encodedSizeEstimate()
	var timeout <-chan time.Time
	c.mu.Lock()
	for {
		if c.closing {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.hasRoom(size) {
			break
		}
		if !c.o.block {
			c.mu.Unlock()
			c.dropped.Add(1)
			return ErrQueueFull
		}
		if timeout == nil && c.o.blockTimeout > 0 {
			timer := time.NewTimer(c.o.blockTimeout)
			defer timer.Stop()
			timeout = timer.C
		}
		ch := c.progress
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			c.dropped.Add(1)
			return ErrQueueFull
		}
		c.mu.Lock()
	}
	if c.pendingCount == 0 {
		c.wake.Signal()
	}
	var q *recordChunk
	if n := len(c.pending); n > 0 && len(c.pending[n-1].records) < chunkRecords {
		q = c.pending[n-1]
	} else if n := len(c.freeChunks); n > 0 {
		q = c.freeChunks[n-1]
		c.freeChunks = c.freeChunks[:n-1]
		c.pending = append(c.pending, q)
	} else {
		q = &recordChunk{
			records: make([]record, 0, chunkRecords),
			text:    make([]byte, 0, 64*chunkRecords),
			spans:   make([]span, 0, 4*chunkRecords),
		}
		c.pending = append(c.pending, q)
	}
	base := len(q.text)
	q.text = append(q.text, b.scratch...)
	attrs := len(q.spans)
	for _, a := range b.attrs {
		q.spans = append(q.spans, span{a.keyStart + base, a.keyEnd + base, a.valueEnd + base})
	}
	r := record{
		message: b.texts[tMessage], loggerName: b.texts[tLoggerName], when: b.when, pc: b.pc,
		level: b.level, proc: b.proc, attrs: int32(attrs), attrEnd: int32(len(q.spans)),
	}
	if !b.proc {
		r.texts = int32(len(q.texts))
		q.texts = append(q.texts, b.texts)
	}
	q.records = append(q.records, r)
	q.size += size
	c.pendingCount++
	c.pendingSize += size
	c.accepted++
	c.mu.Unlock()
	return nil
}

func (c *Client) hasRoom(size int) bool {
	held := c.pendingCount + c.encoding + c.sentCount
	if held == 0 {
		return true
	}
	return held < c.o.queueSize && c.pendingSize+c.encodingSize+len(c.sent)-c.head+size <= c.o.queueBytes
}

// Flush waits until every message accepted before the call is delivered (written to the
// server; in acknowledged mode, reported on disk), or ctx ends: then an *UndeliveredError.
// A message the encoder refused counts as done (it is in Stats().Dropped).
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	target := c.accepted
	for c.delivered+c.discarded < target {
		ch := c.progress
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			err := &UndeliveredError{
				Count: target - c.delivered - c.discarded, Address: c.o.address, Err: ctx.Err(), LastErr: c.lastErr,
			}
			c.mu.Unlock()
			return err
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return nil
}

// Close flushes (until ctx ends; DefaultCloseTimeout if ctx has no deadline), then stops
// the sender and closes the connection. Messages left undelivered are reported in an
// *UndeliveredError. Send fails with ErrClosed from the start of Close on.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.senderStopped
		return nil
	}
	c.closing = true
	c.notifyLocked() // a Send blocked for room fails with ErrClosed now
	c.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCloseTimeout)
		defer cancel()
	}
	err := c.Flush(ctx)
	c.mu.Lock()
	c.stopped = true
	conn := c.conn
	c.wake.Broadcast()
	c.mu.Unlock()
	c.cancel()
	if conn != nil {
		_ = conn.Close()
	}
	<-c.senderStopped
	return err
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Accepted:  c.accepted,
		Delivered: c.delivered,
		Queued:    c.accepted - c.delivered - c.discarded,
		Dropped:   c.dropped.Load(),
		Connected: c.conn != nil && !c.broken,
		LastError: c.lastErr,
	}
}

// notifyLocked wakes every Flush, Dial and blocked Send to look again.
func (c *Client) notifyLocked() {
	close(c.progress)
	c.progress = make(chan struct{})
}

func (c *Client) hasWork() bool {
	disconnected := c.conn == nil || c.broken
	return c.pendingCount > 0 || c.unwritten > 0 ||
		(disconnected && (c.sentCount > 0 || (c.wantConnect && c.conn == nil)))
}

// run is the sender: it takes what is pending, connects when needed (with backoff) and
// writes in one Write call everything not yet written on the current connection.
func (c *Client) run() {
	defer close(c.senderStopped)
	backoff := c.o.backoffMin
	for {
		c.mu.Lock()
		for !c.stopped && !c.hasWork() {
			c.wake.Wait()
		}
		if c.stopped {
			conn := c.conn
			c.conn = nil
			c.mu.Unlock()
			if conn != nil {
				_ = conn.Close()
			}
			return
		}
		taken := c.takePendingLocked()
		c.mu.Unlock()
		if taken {
			c.encodeTaken()
		}
		c.mu.Lock()
		needConn := c.conn == nil || c.broken
		c.mu.Unlock()
		if needConn {
			if err := c.connect(); err != nil {
				c.fail(err)
				c.sleep(backoff)
				backoff = min(2*backoff, c.o.backoffMax)
				continue
			}
		}
		if err := c.writeUnwritten(); err != nil {
			c.fail(err)
			c.sleep(backoff)
			backoff = min(2*backoff, c.o.backoffMax)
			continue
		}
		backoff = c.o.backoffMin
	}
}

// templateKey names the constant texts of the messages the client fills itself (b.proc):
// the logger name and the call site.
type templateKey struct {
	loggerName string
	pc         uintptr
}

// maxTemplates bounds the sender's templates (a program has that many call sites at most,
// usually; past it they are made again).
const maxTemplates = 4096

// appendFrame encodes b as one frame; a message the client filled itself starts from the
// template of its logger name and call site.
func (c *Client) appendFrame(frames []byte, b *builder) ([]byte, error) {
	b.resolve()
	if b.proc && b.texts[tThreadID] == "" && b.texts[tThreadName] == "" && b.texts[tStackTrace] == "" {
		key := templateKey{b.texts[tLoggerName], b.pc}
		tmpl, ok := c.templates[key]
		if !ok {
			var err error
			if tmpl, err = b.template(); err == nil {
				if c.templates == nil || len(c.templates) >= maxTemplates {
					c.templates = make(map[templateKey][]byte)
				}
				c.templates[key] = tmpl
			}
		}
		if tmpl != nil {
			if data, ok := b.encodeFrom(tmpl); ok {
				return appendPacked(frames, data), nil
			}
		}
	}
	data, err := b.encode()
	if err != nil {
		return frames, err
	}
	return appendPacked(frames, data), nil
}

// takePendingLocked takes the first pending chunks, so that callers go on queueing into
// new ones while the sender encodes these.
func (c *Client) takePendingLocked() bool {
	if c.pendingCount == 0 {
		return false
	}
	n := min(len(c.pending), takeChunks)
	c.taken = append(c.taken[:0], c.pending[:n]...)
	rest := copy(c.pending, c.pending[n:])
	clear(c.pending[rest:])
	c.pending = c.pending[:rest]
	c.encoding, c.encodingSize = 0, 0
	for _, q := range c.taken {
		c.encoding += len(q.records)
		c.encodingSize += q.size
	}
	c.pendingCount -= c.encoding
	c.pendingSize -= c.encodingSize
	return true
}

// encodeTaken encodes the taken records (without the lock) and moves their frames
// behind the undelivered ones, swapping buffers when everything before was delivered
// (the usual case).
func (c *Client) encodeTaken() {
	b := &c.encoder
	frames := slices.Grow(c.newFrames[:0], c.encodingSize)
	encoded := 0
	var encodeErr error
	for _, q := range c.taken {
		b.scratch = q.text
		for i := range q.records {
			r := &q.records[i]
			if r.proc {
				b.texts = [numTexts]string{}
				c.fillDefaults(b, r.when)
				b.texts[tLoggerName], b.texts[tMessage] = r.loggerName, r.message
			} else {
				b.texts, b.when, b.proc = q.texts[r.texts], r.when, false
			}
			b.level, b.pc = r.level, r.pc
			b.attrs = q.spans[r.attrs:r.attrEnd]
			mark := len(frames)
			var err error
			if frames, err = c.appendFrame(frames, b); err != nil {
				encodeErr = err
				continue
			}
			if size := len(frames) - mark - 4; size > c.o.maxFrameSize {
				frames = frames[:mark]
				encodeErr = fmt.Errorf("%w: a frame of %d bytes, the limit is %d (the server closes the connection past its --max_frame_size); dropped",
					ErrMessageTooLarge, size, c.o.maxFrameSize)
				continue
			}
			encoded++
		}
		clear(q.records) // let the strings go
		clear(q.texts)
		q.records, q.texts, q.text, q.spans, q.size = q.records[:0], q.texts[:0], q.text[:0], q.spans[:0], 0
	}
	b.texts, b.scratch, b.attrs = [numTexts]string{}, nil, nil

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.taken {
		if len(c.freeChunks) < maxFreeChunks && cap(q.text) <= maxKeptBuffer {
			c.freeChunks = append(c.freeChunks, q)
		}
	}
	clear(c.taken)
	c.taken = c.taken[:0]
	if failed := c.encoding - encoded; failed > 0 {
		c.discarded += uint64(failed)
		c.dropped.Add(uint64(failed))
		c.lastErr = encodeErr
		c.notifyLocked()
	}
	c.encoding, c.encodingSize = 0, 0
	if c.head == len(c.sent) {
		c.sent, frames = frames, c.sent[:0]
		c.head, c.writePos = 0, 0
	} else {
		if c.head > 0 && c.head >= len(c.sent)/2 {
			n := copy(c.sent, c.sent[c.head:])
			c.sent = c.sent[:n]
			c.writePos -= c.head
			c.head = 0
		}
		c.sent = append(c.sent, frames...)
		frames = frames[:0]
	}
	if cap(frames) > maxKeptBuffer {
		frames = nil
	}
	c.newFrames = frames
	c.sentCount += encoded
	c.unwritten += encoded
}

func (c *Client) sleep(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-c.ctx.Done():
	}
}

// fail records a connection error and drops the connection; what it had not delivered
// goes again on the next one.
func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.lastErr = err
	}
	if c.conn != nil {
		_ = c.conn.Close()
		c.broken = true
	}
	c.notifyLocked()
}

func (c *Client) connect() error {
	dialer := net.Dialer{Timeout: c.o.dialTimeout}
	conn, err := dialer.DialContext(c.ctx, c.o.network, c.o.address)
	if err != nil {
		return err
	}
	if c.o.hello {
		if err := c.sendHelloMsg(conn); err != nil {
			_ = conn.Close()
			return err
		}
	}
	if c.o.ack {
		if err := c.hello(conn); err != nil {
			_ = conn.Close()
			return err
		}
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		_ = conn.Close()
		return ErrClosed
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.conn, c.broken = conn, false
	c.gen++
	c.writePos, c.unwritten = c.head, c.sentCount
	c.connWritten, c.connAcked = 0, 0
	gen := c.gen
	c.notifyLocked()
	c.mu.Unlock()
	go c.read(conn, gen)
	return nil
}

// hello opens acknowledged mode; Close interrupts it.
func (c *Client) hello(conn net.Conn) error {
	stop := context.AfterFunc(c.ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(c.o.dialTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write(ackHello); err != nil {
		return fmt.Errorf("acknowledged-mode hello: %w", err)
	}
	answer := make([]byte, len(ackHello))
	if _, err := io.ReadFull(conn, answer); err != nil || string(answer) != string(ackHello) {
		return fmt.Errorf("the log server at %s does not support acknowledged mode (answer %q, %v)",
			c.o.address, answer, err)
	}
	return conn.SetDeadline(time.Time{})
}

// sendHelloMsg writes the original server's HelloMsg (WithHello) as the connection's first
// frame, within the dial timeout; Close interrupts it.
func (c *Client) sendHelloMsg(conn net.Conn) error {
	name := c.proc.serviceName
	if name == "" {
		name = c.proc.loggerName
	}
	if name == "" {
		name = "log_server_client"
	}
	frame, err := helloFrame(name, c.proc.hostname, conn.LocalAddr().String(), conn.RemoteAddr().String())
	if err != nil {
		return err
	}
	stop := context.AfterFunc(c.ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetWriteDeadline(time.Now().Add(c.o.dialTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("HelloMsg: %w", err)
	}
	return conn.SetWriteDeadline(time.Time{})
}

func (c *Client) writeUnwritten() error {
	c.mu.Lock()
	conn := c.conn
	start, end := c.writePos, len(c.sent)
	data := c.sent[start:end]
	frames := c.unwritten
	// Counted before writing: the acknowledgement can come back before Write returns.
	c.connWritten += uint64(frames)
	c.writePos, c.unwritten = end, 0
	c.mu.Unlock()
	if frames == 0 {
		return nil
	}
	if c.o.writeTimeout > 0 {
		if err := conn.SetWriteDeadline(time.Now().Add(c.o.writeTimeout)); err != nil {
			return err
		}
	}
	if _, err := conn.Write(data); err != nil {
		return err
	}
	if !c.o.ack {
		c.mu.Lock()
		c.deliverLocked(frames, end)
		c.mu.Unlock()
	}
	return nil
}

// deliverLocked marks the first `frames` undelivered frames delivered; `end` is where they
// end in `sent` (-1: find it from the frames' length prefixes).
func (c *Client) deliverLocked(frames int, end int) {
	if end < 0 {
		end = c.head
		for i := 0; i < frames; i++ {
			end += 4 + int(binary.BigEndian.Uint32(c.sent[end:]))
		}
	}
	c.head = end
	c.sentCount -= frames
	c.delivered += uint64(frames)
	c.notifyLocked()
}

// read watches one connection. The server sends nothing but acknowledgements, so without
// acknowledged mode anything read (an EOF, mostly) means the server closed the connection
// and the next batch must go on a new one.
func (c *Client) read(conn net.Conn, gen uint64) {
	var buf [8]byte
	for {
		var err error
		if c.o.ack {
			_, err = io.ReadFull(conn, buf[:])
		} else {
			_, err = conn.Read(buf[:1])
			if err == nil {
				err = errors.New("the log server sent bytes on a plain connection")
			}
		}
		c.mu.Lock()
		if gen != c.gen || c.broken {
			c.mu.Unlock()
			return
		}
		if err == nil {
			err = c.ackLocked(binary.BigEndian.Uint64(buf[:]))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the log server at %s closed the connection", c.o.address)
			}
			if !c.stopped {
				c.lastErr = err
			}
			c.broken = true
			_ = conn.Close()
			c.wake.Signal()
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

func (c *Client) ackLocked(count uint64) error {
	if count < c.connAcked || count > c.connWritten {
		return fmt.Errorf("the log server acknowledged %d messages of this connection, of %d sent (%d acknowledged before)",
			count, c.connWritten, c.connAcked)
	}
	if count > c.connAcked {
		c.deliverLocked(int(count-c.connAcked), -1)
		c.connAcked = count
	}
	return nil
}
