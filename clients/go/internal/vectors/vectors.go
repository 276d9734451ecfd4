// Package vectors reads the shared test vectors (schema/vectors/vectors.json, made by
// scripts/gen_vectors.py from the Python reference), for the unit tests and the
// conformance program.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"

	"github.com/log-server/log_server/clients/go/logserver"
)

// File is the vectors file; clients ignore its "frames" (server-side cases).
type File struct {
	Format int    `json:"format"`
	Cases  []Case `json:"cases"`
}

// Case is one message: its fields, pycapnp's packed payload, the expected lines.
type Case struct {
	Name   string                     `json:"name"`
	Fields map[string]json.RawMessage `json:"fields"`
	Packed string                     `json:"packed"`
	Text   string                     `json:"text"`
	JSON   string                     `json:"json"`
}

// Attribute is one entry of a case's "attributes".
type Attribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// textFields are the field names of a case in schema order, each with its Message field.
var textFields = []struct {
	name string
	get  func(*logserver.Message) *string
}{
	{"timestamp", func(m *logserver.Message) *string { return &m.Timestamp }},
	{"hostname", func(m *logserver.Message) *string { return &m.Hostname }},
	{"logger_name", func(m *logserver.Message) *string { return &m.LoggerName }},
	{"module", func(m *logserver.Message) *string { return &m.Module }},
	{"filename", func(m *logserver.Message) *string { return &m.Filename }},
	{"function_name", func(m *logserver.Message) *string { return &m.FunctionName }},
	{"line_number", func(m *logserver.Message) *string { return &m.LineNumber }},
	{"message", func(m *logserver.Message) *string { return &m.Message }},
	{"path_name", func(m *logserver.Message) *string { return &m.PathName }},
	{"process_id", func(m *logserver.Message) *string { return &m.ProcessID }},
	{"process_name", func(m *logserver.Message) *string { return &m.ProcessName }},
	{"thread_id", func(m *logserver.Message) *string { return &m.ThreadID }},
	{"thread_name", func(m *logserver.Message) *string { return &m.ThreadName }},
	{"service_name", func(m *logserver.Message) *string { return &m.ServiceName }},
	{"stack_trace", func(m *logserver.Message) *string { return &m.StackTrace }},
}

// Load reads and checks a vectors file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Format != 1 {
		return nil, fmt.Errorf("%s: format %d, this client reads format 1", path, f.Format)
	}
	for i := range f.Cases {
		if _, err := f.Cases[i].Message(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return &f, nil
}

// Message is the case's fields as a Message, exactly as given.
func (c *Case) Message() (*logserver.Message, error) {
	want := map[string]bool{"level": true, "attributes": true}
	for _, f := range textFields {
		want[f.name] = true
	}
	var keys []string
	for k := range c.Fields {
		if !want[k] {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 || len(c.Fields) != len(want) {
		sort.Strings(keys)
		return nil, fmt.Errorf("case %q: fields must be exactly the 16 of the schema and attributes (unknown: %v, %d given)",
			c.Name, keys, len(c.Fields))
	}
	var m logserver.Message
	for _, f := range textFields {
		if err := json.Unmarshal(c.Fields[f.name], f.get(&m)); err != nil {
			return nil, fmt.Errorf("case %q, field %s: %w", c.Name, f.name, err)
		}
	}
	var level string
	if err := json.Unmarshal(c.Fields["level"], &level); err != nil {
		return nil, fmt.Errorf("case %q, field level: %w", c.Name, err)
	}
	var err error
	if m.Level, err = logserver.ParseLevel(level); err != nil {
		return nil, fmt.Errorf("case %q: %w", c.Name, err)
	}
	var attrs []Attribute
	if err := json.Unmarshal(c.Fields["attributes"], &attrs); err != nil {
		return nil, fmt.Errorf("case %q, field attributes: %w", c.Name, err)
	}
	for _, a := range attrs {
		m.Attributes = append(m.Attributes, logserver.Attribute{Key: a.Key, Value: a.Value})
	}
	return &m, nil
}

// PackedPayload is the case's packed hex as bytes.
func (c *Case) PackedPayload() ([]byte, error) {
	return hex.DecodeString(c.Packed)
}

// Diff lists the fields where got differs from want ("" when equal); a nil and an empty
// attribute list are the same.
func Diff(want, got *logserver.Message) string {
	var diffs []string
	for _, f := range textFields {
		if w, g := *f.get(want), *f.get(got); w != g {
			diffs = append(diffs, fmt.Sprintf("%s: want %.80q, got %.80q", f.name, w, g))
		}
	}
	if want.Level != got.Level {
		diffs = append(diffs, fmt.Sprintf("level: want %s, got %s", want.Level, got.Level))
	}
	if len(want.Attributes)+len(got.Attributes) > 0 && !reflect.DeepEqual(want.Attributes, got.Attributes) {
		diffs = append(diffs, fmt.Sprintf("attributes: want %.200q, got %.200q", want.Attributes, got.Attributes))
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprint(diffs)
}
