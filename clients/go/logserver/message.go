package logserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	capnp "capnproto.org/go/capnp/v3"
	"capnproto.org/go/capnp/v3/packed"

	"github.com/log-server/log_server/clients/go/internal/logcapnp"
)

// Message is one log record with every field of the schema's LoggerMsg. Client.Send
// sends it exactly as given: an empty field stays empty (the server then fills only the
// timestamp, with the time it received the message).
type Message struct {
	Timestamp    string
	Hostname     string
	LoggerName   string
	Module       string
	Level        Level
	Filename     string
	FunctionName string
	LineNumber   string
	Message      string
	PathName     string
	ProcessID    string
	ProcessName  string
	ThreadID     string
	ThreadName   string
	ServiceName  string
	StackTrace   string
	// Attributes are structured key/value pairs, kept in this order.
	Attributes []Attribute
}

// Attribute is one structured key/value pair of a message.
type Attribute struct {
	Key   string
	Value string
}

// AppendFrame appends m as one TCP frame (4-byte big-endian length, then the packed
// Cap'n Proto LoggerMsg) to dst.
func AppendFrame(dst []byte, m *Message) ([]byte, error) {
	b := getBuilder()
	defer putBuilder(b)
	b.setMessage(m)
	return b.appendFrame(dst)
}

// Decode reads a frame's payload (without the length prefix), packed or standard
// encoding told apart as the server does (docs/protocol.md).
func Decode(payload []byte) (*Message, error) {
	var msg *capnp.Message
	var err error
	if len(payload) >= 4 && binary.LittleEndian.Uint32(payload) == 0 {
		msg, err = capnp.Unmarshal(payload)
	} else {
		msg, err = capnp.UnmarshalPacked(payload)
	}
	if err != nil {
		return nil, fmt.Errorf("logserver: not a Cap'n Proto message: %w", err)
	}
	root, err := logcapnp.ReadRootLoggerMsg(msg)
	if err != nil {
		return nil, fmt.Errorf("logserver: not a LoggerMsg: %w", err)
	}
	var m Message
	var errs []error
	text := func(get func() (string, error)) string {
		s, err := get()
		if err != nil {
			errs = append(errs, err)
		}
		return s
	}
	m.Timestamp = text(root.Timestamp)
	m.Hostname = text(root.Hostname)
	m.LoggerName = text(root.LoggerName)
	m.Module = text(root.Module)
	m.Level = Level(root.Level())
	m.Filename = text(root.Filename)
	m.FunctionName = text(root.FunctionName)
	m.LineNumber = text(root.LineNumber)
	m.Message = text(root.Message_)
	m.PathName = text(root.PathName)
	m.ProcessID = text(root.ProcessId)
	m.ProcessName = text(root.ProcessName)
	m.ThreadID = text(root.ThreadId)
	m.ThreadName = text(root.ThreadName)
	m.ServiceName = text(root.ServiceName)
	m.StackTrace = text(root.StackTrace)
	if root.HasAttributes() {
		list, err := root.Attributes()
		if err != nil {
			errs = append(errs, err)
		}
		for i := 0; i < list.Len(); i++ {
			a := list.At(i)
			m.Attributes = append(m.Attributes, Attribute{Key: text(a.Key), Value: text(a.Value)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("logserver: bad LoggerMsg field: %w", err)
	}
	return &m, nil
}

// builder holds one message: the 15 texts, the level, and the attributes collected as
// spans of one scratch buffer, so that the slog handler formats values without a string
// allocation each. A caller fills one (pooled) and queues it as a record; the sender
// fills its own from each record and encodes it, reusing its capnp.Message and buffers so
// that an encoding is allocation-free once warm.
type builder struct {
	texts [numTexts]string
	level Level
	when  time.Time // non-zero: formatted into the timestamp when encoding
	pc    uintptr   // non-zero: the source fields are resolved from it when encoding
	// proc: the client filled host, process and service names (fillDefaults), and no
	// text but the logger name and the message: the queue keeps only those two, and the
	// sender starts from a template.
	proc    bool
	scratch []byte
	attrs   []span
	stamp   []byte
	// stampSecond is the Unix second stamp[:20] ("2006-01-02T15:04:05.") was made for.
	stampSecond int64
	msg         capnp.Message
	segment     []byte // the buffer of a message made from a template
}

type span struct{ keyStart, keyEnd, valueEnd int }

// The Text fields of LoggerMsg, in schema order.
const (
	tTimestamp = iota
	tHostname
	tLoggerName
	tModule
	tFilename
	tFunctionName
	tLineNumber
	tMessage
	tPathName
	tProcessID
	tProcessName
	tThreadID
	tThreadName
	tServiceName
	tStackTrace
	numTexts
)

var builders = sync.Pool{New: func() any { return new(builder) }}

func getBuilder() *builder { return builders.Get().(*builder) }

func putBuilder(b *builder) {
	if cap(b.scratch) > 1<<20 {
		return // one huge message should not pin its buffer forever
	}
	b.texts = [numTexts]string{}
	b.when, b.pc, b.proc = time.Time{}, 0, false
	b.scratch = b.scratch[:0]
	b.attrs = b.attrs[:0]
	builders.Put(b)
}

func (b *builder) setMessage(m *Message) {
	b.texts = [numTexts]string{
		m.Timestamp, m.Hostname, m.LoggerName, m.Module, m.Filename, m.FunctionName,
		m.LineNumber, m.Message, m.PathName, m.ProcessID, m.ProcessName, m.ThreadID,
		m.ThreadName, m.ServiceName, m.StackTrace,
	}
	b.level = m.Level
	for _, a := range m.Attributes {
		b.addAttr(a.Key, a.Value)
	}
}

// TimestampLayout is how the client writes a message's time: ISO-8601 in UTC with
// microseconds, the server's own format ("2026-12-01T10:00:00.000000+00:00").
const TimestampLayout = "2006-01-02T15:04:05.000000-07:00"

// setTimestamp formats t as TimestampLayout; within the second of the last call it only
// rewrites the microseconds, the part that changes.
func (b *builder) setTimestamp(t time.Time) {
	t = t.UTC()
	if second := t.Unix(); second != b.stampSecond || len(b.stamp) < len(TimestampLayout) {
		b.stamp = t.AppendFormat(b.stamp[:0], TimestampLayout)
		b.stampSecond = second
	} else {
		b.stamp = b.stamp[:len("2006-01-02T15:04:05.")]
		us := t.Nanosecond() / 1000
		for div := 100_000; div > 0; div /= 10 {
			b.stamp = append(b.stamp, byte('0'+us/div%10))
		}
		b.stamp = append(b.stamp, "+00:00"...)
	}
	b.texts[tTimestamp] = unsafe.String(&b.stamp[0], len(b.stamp))
}

func (b *builder) addAttr(key, value string) {
	start := len(b.scratch)
	b.scratch = append(b.scratch, key...)
	keyEnd := len(b.scratch)
	b.scratch = append(b.scratch, value...)
	b.attrs = append(b.attrs, span{start, keyEnd, len(b.scratch)})
}

// str views part of the scratch buffer as a string for the capnp setters, which copy it
// into the segment at once; the view never outlives the call.
func (b *builder) str(from, to int) string {
	if from == to {
		return ""
	}
	return unsafe.String(&b.scratch[from], to-from)
}

func (b *builder) appendFrame(dst []byte) ([]byte, error) {
	b.resolve()
	data, err := b.encode()
	if err != nil {
		return dst, err
	}
	return appendPacked(dst, data), nil
}

// resolve turns the time and program counter into their texts.
func (b *builder) resolve() {
	if !b.when.IsZero() {
		b.setTimestamp(b.when)
	}
	if b.pc != 0 {
		src := sourceOf(b.pc)
		b.texts[tFilename] = src.filename
		b.texts[tPathName] = src.path
		b.texts[tFunctionName] = src.function
		b.texts[tLineNumber] = src.line
		b.texts[tModule] = src.module
	}
}

// encode builds the message in b.msg and returns its segment.
func (b *builder) encode() ([]byte, error) {
	seg, err := b.msg.Reset(capnp.SingleSegment(nil))
	if err != nil {
		return nil, fmt.Errorf("logserver: encoding: %w", err)
	}
	root, err := logcapnp.NewRootLoggerMsg(seg)
	if err != nil {
		return nil, fmt.Errorf("logserver: encoding: %w", err)
	}
	return b.fill(root, seg)
}

// fill sets b's level, non-empty texts and attributes on root.
func (b *builder) fill(root logcapnp.LoggerMsg, seg *capnp.Segment) ([]byte, error) {
	root.SetLevel(b.level.capnp())
	setters := [numTexts]func(string) error{
		root.SetTimestamp, root.SetHostname, root.SetLoggerName, root.SetModule,
		root.SetFilename, root.SetFunctionName, root.SetLineNumber, root.SetMessage_,
		root.SetPathName, root.SetProcessId, root.SetProcessName, root.SetThreadId,
		root.SetThreadName, root.SetServiceName, root.SetStackTrace,
	}
	for i, s := range b.texts {
		if s != "" {
			if err := setters[i](s); err != nil {
				return nil, fmt.Errorf("logserver: encoding: %w", err)
			}
		}
	}
	if len(b.attrs) > 0 {
		list, err := root.NewAttributes(int32(len(b.attrs)))
		if err != nil {
			return nil, fmt.Errorf("logserver: encoding: %w", err)
		}
		for i, a := range b.attrs {
			item := list.At(i)
			if err := item.SetKey(b.str(a.keyStart, a.keyEnd)); err != nil {
				return nil, fmt.Errorf("logserver: encoding: %w", err)
			}
			if err := item.SetValue(b.str(a.keyEnd, a.valueEnd)); err != nil {
				return nil, fmt.Errorf("logserver: encoding: %w", err)
			}
		}
	}
	return seg.Data(), nil
}

// The texts a template holds: the same for every message of one client, logger name and
// call site.
var templateTexts = [...]int{
	tHostname, tLoggerName, tModule, tFilename, tFunctionName, tLineNumber, tPathName,
	tProcessID, tProcessName, tServiceName,
}

// template encodes the texts templateTexts names (and nothing else) and returns a copy of
// the segment, to start the messages of b's logger name and call site from.
func (b *builder) template() ([]byte, error) {
	var t builder
	for _, i := range templateTexts {
		t.texts[i] = b.texts[i]
	}
	data, err := t.encode()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), data...), nil
}

// encodeFrom encodes b starting from tmpl, a template made for b's constant texts, so
// that only the time, message and attributes are set one by one. The segment has room
// for them reserved up front; ok is false when it did not suffice (then use encode).
func (b *builder) encodeFrom(tmpl []byte) (data []byte, ok bool) {
	room := len(tmpl) + 256 + len(b.scratch) + 48*len(b.attrs)
	for i, s := range b.texts {
		if !isTemplateText(i) {
			room += len(s) + 8
		}
	}
	b.segment = append(slices.Grow(b.segment[:0], room), tmpl...)
	if _, err := b.msg.Reset(capnp.SingleSegment(b.segment)); err != nil {
		return nil, false
	}
	root, err := logcapnp.ReadRootLoggerMsg(&b.msg)
	if err != nil {
		return nil, false
	}
	seg, err := b.msg.Segment(0)
	if err != nil {
		return nil, false
	}
	texts := b.texts
	for _, i := range templateTexts {
		b.texts[i] = ""
	}
	data, err = b.fill(root, seg)
	b.texts = texts
	return data, err == nil
}

func isTemplateText(i int) bool {
	for _, t := range templateTexts {
		if t == i {
			return true
		}
	}
	return false
}

// packSlice bounds the bytes given to one packed.Pack call: it measures a run of zero
// words up to the end of its input at every 255-word step, so a long run of zeros (a
// text of NUL bytes) packed in one call takes quadratic time, seconds for a few MB. Cut at
// word boundaries, the output is still valid packing (a run split into two).
const packSlice = 256 * 8

// appendPacked appends data, a single-segment message, as one frame: the length, then
// the packed stream header and segment.
func appendPacked(dst, data []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	// The stream header of a single-segment message: segment count - 1 (0), then the
	// segment's size in words. It is one word, never all zero or all non-zero, so packing it
	// apart from the segment gives the same bytes as packing the two together.
	var header [8]byte
	binary.LittleEndian.PutUint32(header[4:], uint32(len(data)/8))
	dst = packed.Pack(dst, header[:])
	for len(data) > 0 {
		n := min(len(data), packSlice)
		dst = packed.Pack(dst, data[:n])
		data = data[n:]
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
