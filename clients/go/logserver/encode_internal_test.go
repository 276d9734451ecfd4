package logserver

import (
	"context"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// Within one second setTimestamp only rewrites the microseconds; every result must still
// be what the layout gives.
func TestTimestampWithinAndAcrossSeconds(t *testing.T) {
	var b builder
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.FixedZone("X", 3600))
	for _, d := range []time.Duration{
		0, time.Microsecond, 999_999 * time.Microsecond, time.Second, time.Second + 7*time.Microsecond,
		1500 * time.Millisecond, 2 * time.Second, 2*time.Second + 1, time.Hour, time.Hour + 999,
	} {
		when := base.Add(d)
		b.setTimestamp(when)
		if want := when.UTC().Format(TimestampLayout); b.texts[tTimestamp] != want {
			t.Fatalf("%v: %q, want %q", when, b.texts[tTimestamp], want)
		}
	}
}

// A message the client fills itself is encoded from its call site's template; it must
// decode to the same fields as one encoded field by field, whatever its message and
// attributes.
func TestTemplateEncodingMatchesFieldByField(t *testing.T) {
	c, err := New(WithAddress("127.0.0.1:1"), WithServiceName("svc"), WithLoggerName("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(canceled())
	pc, _, _, _ := runtime.Caller(0)
	for i, tc := range []struct {
		message string
		attrs   [][2]string
		pc      uintptr
	}{
		{"first", nil, pc},
		{"second, longer than the first, with attributes", [][2]string{{"k", "v"}, {"order.id", "12345"}}, pc},
		{"", [][2]string{{"empty message", ""}}, pc},
		{"no source", [][2]string{{"a", "b"}}, 0},
		{string(make([]byte, 5000)), [][2]string{{"big", string(make([]byte, 3000))}}, pc},
	} {
		var b builder
		c.fillDefaults(&b, time.Date(2026, 12, 1, 10, 0, 0, int(i)*1000, time.UTC))
		b.level, b.pc, b.texts[tMessage] = LevelWarning, tc.pc, tc.message
		for _, a := range tc.attrs {
			b.addAttr(a[0], a[1])
		}
		templated, err := c.appendFrame(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := b.appendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(templated[4:])
		if err != nil {
			t.Fatal(err)
		}
		want, err := Decode(plain[4:])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: from the template %+v\nfield by field %+v", i, got, want)
		}
		if tc.pc != 0 && (got.Filename != "encode_internal_test.go" || got.ServiceName != "svc" || got.LoggerName != "app") {
			t.Fatalf("case %d: fields missing: %+v", i, got)
		}
	}
	if len(c.templates) != 2 {
		t.Fatalf("%d templates, want 2 (one per call site)", len(c.templates))
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// A few huge messages must not leave their buffers pinned in the chunks kept for reuse.
func TestHugeMessageBuffersAreNotKept(t *testing.T) {
	c, err := New(WithAddress("127.0.0.1:1"), WithReconnectBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(canceled())
	huge := string(make([]byte, 2*maxKeptBuffer))
	if err := c.Send(&Message{Message: "huge", Attributes: []Attribute{{Key: "blob", Value: huge}}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		encoded := c.sentCount == 1
		c.mu.Unlock()
		if encoded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sender did not encode the message within 10 s")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.freeChunks {
		if cap(q.text) > maxKeptBuffer {
			t.Fatalf("a free chunk keeps %d bytes of text", cap(q.text))
		}
	}
}

// Frames are packed a slice at a time; cut inside runs of zero words and of literal
// words, the packing must still decode to the message.
func TestPackedInSlicesDecodes(t *testing.T) {
	literal := make([]byte, 3*packSlice+5)
	for i := range literal {
		literal[i] = byte('a' + i%26)
	}
	m := &Message{
		Message:    string(make([]byte, 5*packSlice+3)), // NUL bytes: runs of zero words
		StackTrace: string(literal),
		Attributes: []Attribute{{Key: "k", Value: string(make([]byte, 2*packSlice))}, {Key: "v", Value: "x"}},
	}
	frame, err := AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatal("the message decoded from the frame differs from the one sent")
	}
}
