package logserver_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	capnp "capnproto.org/go/capnp/v3"

	"github.com/log-server/log_server/clients/go/internal/logcapnp"
	"github.com/log-server/log_server/clients/go/internal/vectors"
	"github.com/log-server/log_server/clients/go/logserver"
)

// The repository's shared vectors, made from the Python reference (this package is
// clients/go/logserver).
var sharedVectors = filepath.Join("..", "..", "..", "schema", "vectors", "vectors.json")

func TestSharedVectors(t *testing.T) {
	f, err := vectors.Load(sharedVectors)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is absent (scripts/gen_vectors.py makes it); the local fixture runs instead", sharedVectors)
	}
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, f)
}

// The fixture (testdata/make_fixture.py, pycapnp) keeps the cross-library check running
// wherever the shared file is missing.
func TestFixtureVectors(t *testing.T) {
	f, err := vectors.Load(filepath.Join("..", "testdata", "vectors_fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, f)
}

func checkVectors(t *testing.T, f *vectors.File) {
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			want, err := c.Message()
			if err != nil {
				t.Fatal(err)
			}
			frame, err := logserver.AppendFrame(nil, want)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
				t.Fatalf("length prefix %d, payload %d bytes", n, len(frame)-4)
			}
			got, err := logserver.Decode(frame[4:])
			if err != nil {
				t.Fatal(err)
			}
			if diff := vectors.Diff(want, got); diff != "" {
				t.Errorf("own encoding, decoded: %s", diff)
			}
			payload, err := c.PackedPayload()
			if err != nil {
				t.Fatal(err)
			}
			fromPython, err := logserver.Decode(payload)
			if err != nil {
				t.Fatal(err)
			}
			if diff := vectors.Diff(want, fromPython); diff != "" {
				t.Errorf("pycapnp's packed payload, decoded: %s", diff)
			}
		})
	}
}

func TestDecodeStandardEncoding(t *testing.T) {
	msg, seg, err := capnp.NewMessage(capnp.SingleSegment(nil))
	if err != nil {
		t.Fatal(err)
	}
	root, err := logcapnp.NewRootLoggerMsg(seg)
	if err != nil {
		t.Fatal(err)
	}
	_ = root.SetMessage_("standard")
	root.SetLevel(logcapnp.Level_error)
	data, err := msg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := logserver.Decode(data)
	if err != nil || got.Message != "standard" || got.Level != logserver.LevelError {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestAppendFrameAppendsAndRejectsGarbage(t *testing.T) {
	first, _ := logserver.AppendFrame(nil, &logserver.Message{Message: "a"})
	both, err := logserver.AppendFrame(append([]byte(nil), first...), &logserver.Message{Message: "b"})
	if err != nil || string(both[:len(first)]) != string(first) {
		t.Fatalf("AppendFrame changed what was before: %v", err)
	}
	second, err := logserver.Decode(both[len(first)+4:])
	if err != nil || second.Message != "b" {
		t.Fatalf("got %+v, %v", second, err)
	}
	if _, err := logserver.Decode([]byte("not capnp at all")); err == nil || !strings.Contains(err.Error(), "logserver") {
		t.Fatalf("garbage decoded: %v", err)
	}
}

func TestLevelNames(t *testing.T) {
	for i, name := range []string{"NOTSET", "DEBUG", "STREAM", "INFO", "LOGON", "LOGOUT", "TRADE", "SCHEDULE",
		"REPORT", "WARNING", "ERROR", "CRITICAL"} {
		if logserver.Level(i).String() != name {
			t.Errorf("level %d is %s, want %s", i, logserver.Level(i), name)
		}
		if l, err := logserver.ParseLevel(strings.ToLower(name)); err != nil || l != logserver.Level(i) {
			t.Errorf("ParseLevel(%q) = %v, %v", name, l, err)
		}
	}
	if logserver.Level(42).String() != "LEVEL42" {
		t.Errorf("unknown level: %s", logserver.Level(42))
	}
	if _, err := logserver.ParseLevel("loud"); err == nil {
		t.Error("ParseLevel accepted an unknown name")
	}
}
