package logserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HandlerOptions configure a Handler; the zero value is ready to use.
type HandlerOptions struct {
	// Level is the minimum level handled (default slog.LevelInfo).
	Level slog.Leveler
	// LoggerName fills logger_name (default: the client's WithLoggerName).
	LoggerName string
	// MapLevel maps a slog level onto the server's (default SlogLevel).
	MapLevel func(slog.Level) Level
	// NoSource leaves filename, function_name, line_number, module and path_name empty.
	NoSource bool
}

// Handler is a slog.Handler sending each record through a Client. The record's time,
// level and message fill the fields of the same names; its source location fills
// filename (base name), path_name (full path), function_name, line_number and module (the
// function's package path); the client's host, process and service names fill theirs.
// Attributes become the message's attributes in order, values formatted as text, groups
// flattened into dotted keys ("req.method").
type Handler struct {
	c          *Client
	level      slog.Leveler
	loggerName string
	mapLevel   func(slog.Level) Level
	noSource   bool
	prefix     string // "g1.g2." of the open groups
	pre        []byte // the attributes given to WithAttrs, formatted as in a builder
	preSpans   []span
}

// NewHandler returns a Handler sending through c (opts may be nil).
func NewHandler(c *Client, opts *HandlerOptions) *Handler {
	if opts == nil {
		opts = &HandlerOptions{}
	}
	h := &Handler{
		c:          c,
		level:      opts.Level,
		loggerName: opts.LoggerName,
		mapLevel:   opts.MapLevel,
		noSource:   opts.NoSource,
	}
	if h.level == nil {
		h.level = slog.LevelInfo
	}
	if h.loggerName == "" {
		h.loggerName = c.proc.loggerName
	}
	if h.mapLevel == nil {
		h.mapLevel = SlogLevel
	}
	return h
}

// Enabled reports whether l is at least the handler's level.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle queues the record; the error is Send's (ErrQueueFull, ErrClosed). It only
// formats the attributes and copies them into the queue: the time, the source location
// (from the record's program counter) and the Cap'n Proto encoding are the sender
// goroutine's work, off the logging goroutine.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	b := getBuilder()
	defer putBuilder(b)
	h.c.fillDefaults(b, r.Time)
	b.texts[tLoggerName] = h.loggerName
	b.level = h.mapLevel(r.Level)
	b.texts[tMessage] = r.Message
	if !h.noSource {
		b.pc = r.PC
	}
	b.scratch = append(b.scratch, h.pre...)
	b.attrs = append(b.attrs, h.preSpans...)
	if r.NumAttrs() > 0 {
		r.Attrs(func(a slog.Attr) bool {
			b.appendSlogAttr(h.prefix, a)
			return true
		})
	}
	return h.c.enqueue(b)
}

// WithAttrs returns a handler adding attrs (formatted once, now) to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	b := builder{
		scratch: append([]byte(nil), h.pre...),
		attrs:   append([]span(nil), h.preSpans...),
	}
	for _, a := range attrs {
		b.appendSlogAttr(h.prefix, a)
	}
	h2 := *h
	h2.pre, h2.preSpans = b.scratch, b.attrs
	return &h2
}

// WithGroup returns a handler whose later attributes' keys start with "name.".
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func (b *builder) appendSlogAttr(prefix string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		group := v.Group()
		if len(group) == 0 {
			return
		}
		if a.Key != "" {
			prefix = prefix + a.Key + "."
		}
		for _, ga := range group {
			b.appendSlogAttr(prefix, ga)
		}
		return
	}
	start := len(b.scratch)
	b.scratch = append(b.scratch, prefix...)
	b.scratch = append(b.scratch, a.Key...)
	keyEnd := len(b.scratch)
	b.scratch = appendValue(b.scratch, v)
	b.attrs = append(b.attrs, span{start, keyEnd, len(b.scratch)})
}

// appendValue formats a resolved, non-group value as text, as slog's TextHandler does
// (times as RFC 3339 with nanoseconds).
func appendValue(dst []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return append(dst, v.String()...)
	case slog.KindInt64:
		return strconv.AppendInt(dst, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(dst, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(dst, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(dst, v.Bool())
	case slog.KindDuration:
		return append(dst, v.Duration().String()...)
	case slog.KindTime:
		return v.Time().AppendFormat(dst, time.RFC3339Nano)
	default:
		return fmt.Append(dst, v.Any())
	}
}

type source struct {
	filename, path, function, line, module string
}

// sources caches the source fields per program counter: a program has a bounded number
// of call sites, and resolving one costs far more than a map lookup.
var sources sync.Map

func sourceOf(pc uintptr) *source {
	if s, ok := sources.Load(pc); ok {
		return s.(*source)
	}
	frame, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	s := &source{path: frame.File, line: strconv.Itoa(frame.Line)}
	if i := strings.LastIndexByte(frame.File, '/'); i >= 0 {
		s.filename = frame.File[i+1:]
	} else {
		s.filename = frame.File
	}
	s.module, s.function = splitFunction(frame.Function)
	sources.Store(pc, s)
	return s
}

// splitFunction splits "example.com/app/pkg.(*T).Method" into the package path
// "example.com/app/pkg" and the function "(*T).Method".
func splitFunction(full string) (pkg, function string) {
	slash := strings.LastIndexByte(full, '/') + 1
	dot := strings.IndexByte(full[slash:], '.')
	if dot < 0 {
		return "", full
	}
	return full[:slash+dot], full[slash+dot+1:]
}
