package logserver

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// builder encodes one message at a time: the 15 texts, the level, and the attributes
// collected as spans of one scratch buffer, so that the slog handler formats values
// without a string allocation each. Pooled: a reused capnp.Message and buffers make an
// encoding allocation-free once warm.
type builder struct {
	texts   [numTexts]string
	level   Level
	scratch []byte
	attrs   []span
	stamp   []byte
	out     []byte
	msg     capnp.Message
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
	if cap(b.scratch) > 1<<20 || cap(b.out) > 1<<20 {
		return // one huge message should not pin its buffer forever
	}
	b.texts = [numTexts]string{}
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

func (b *builder) setTimestamp(t time.Time) {
	b.stamp = t.UTC().AppendFormat(b.stamp[:0], TimestampLayout)
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
	seg, err := b.msg.Reset(capnp.SingleSegment(nil))
	if err != nil {
		return dst, fmt.Errorf("logserver: encoding: %w", err)
	}
	root, err := logcapnp.NewRootLoggerMsg(seg)
	if err != nil {
		return dst, fmt.Errorf("logserver: encoding: %w", err)
	}
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
				return dst, fmt.Errorf("logserver: encoding: %w", err)
			}
		}
	}
	if len(b.attrs) > 0 {
		list, err := root.NewAttributes(int32(len(b.attrs)))
		if err != nil {
			return dst, fmt.Errorf("logserver: encoding: %w", err)
		}
		for i, a := range b.attrs {
			item := list.At(i)
			if err := item.SetKey(b.str(a.keyStart, a.keyEnd)); err != nil {
				return dst, fmt.Errorf("logserver: encoding: %w", err)
			}
			if err := item.SetValue(b.str(a.keyEnd, a.valueEnd)); err != nil {
				return dst, fmt.Errorf("logserver: encoding: %w", err)
			}
		}
	}
	data := seg.Data()
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	// The stream header of a single-segment message: segment count - 1 (0), then the
	// segment's size in words. It is one word, never all zero or all non-zero, so packing it
	// apart from the segment gives the same bytes as packing the two together.
	var header [8]byte
	binary.LittleEndian.PutUint32(header[4:], uint32(len(data)/8))
	dst = packed.Pack(dst, header[:])
	dst = packed.Pack(dst, data)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst, nil
}
