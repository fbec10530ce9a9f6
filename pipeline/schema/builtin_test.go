package schema_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/schema"
)

func TestBuiltin(t *testing.T) {
	want := []string{"clicks.avsc", "page_views.avsc", "purchases.avsc"}
	if got := schema.BuiltinNames(); !slices.Equal(got, want) {
		t.Fatalf("BuiltinNames() = %v, want %v", got, want)
	}
	common := []string{"event_id", "event_time", "user_id", "session_id", "country", "device"}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			s, err := avro.Parse(builtin(t, name))
			if err != nil {
				t.Fatal(err)
			}
			rs := s.(*avro.RecordSchema)
			if rs.Namespace() != "sluice.events" {
				t.Errorf("namespace = %q", rs.Namespace())
			}
			for i, f := range common {
				if rs.Fields()[i].Name() != f {
					t.Errorf("field %d = %s, want %s", i, rs.Fields()[i].Name(), f)
				}
			}
		})
	}
	for _, bad := range []string{"", "nope.avsc", "../avsc/clicks.avsc", "avsc/clicks.avsc"} {
		if _, ok := schema.Builtin(bad); ok {
			t.Errorf("Builtin(%q) found something", bad)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}`
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("orders.avsc", good)
	write("broken.avsc", `{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}`)
	write("enum.avsc", `{"type":"enum","name":"E","symbols":["a"]}`)

	tests := []struct {
		name, file string
		want       string
		wantErr    string
	}{
		{name: "builtin wins", file: "clicks.avsc", want: builtin(t, "clicks.avsc")},
		{name: "relative file", file: "orders.avsc", want: good},
		{name: "absolute file", file: filepath.Join(dir, "orders.avsc"), want: good},
		{name: "missing file", file: "missing.avsc", wantErr: "missing.avsc"},
		{name: "invalid schema", file: "broken.avsc", wantErr: "broken.avsc"},
		{name: "not a record", file: "enum.avsc", wantErr: "want record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schema.Load(tt.file, dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Load() = %q, %v", got, err)
			}
		})
	}
}

func TestClean(t *testing.T) {
	for _, name := range schema.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			raw := builtin(t, name)
			clean, err := schema.Clean(raw)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := schema.Clean(raw)
			if again != clean {
				t.Fatal("Clean is not deterministic")
			}
			s, err := avro.ParseWithCache(clean, "", &avro.SchemaCache{})
			if err != nil {
				t.Fatalf("clean schema does not parse: %v\n%s", err, clean)
			}
			rs := s.(*avro.RecordSchema)
			rawRS := avro.MustParse(raw).(*avro.RecordSchema)
			if rs.FullName() != rawRS.FullName()+"Clean" {
				t.Errorf("name = %s", rs.FullName())
			}
			if len(rs.Fields()) != len(rawRS.Fields())+1 {
				t.Fatalf("%d fields, want %d", len(rs.Fields()), len(rawRS.Fields())+1)
			}
			for i, f := range rawRS.Fields() {
				if rs.Fields()[i].Name() != f.Name() || rs.Fields()[i].Type().String() != f.Type().String() {
					t.Errorf("field %d = %s, want %s", i, rs.Fields()[i].Name(), f.Name())
				}
			}
			pa := rs.Fields()[len(rs.Fields())-1]
			if pa.Name() != "processed_at" || pa.Type().String() != `{"type":"long","logicalType":"timestamp-millis"}` {
				t.Errorf("last field = %s %s", pa.Name(), pa.Type())
			}
			if !pa.HasDefault() || pa.Default() != int64(0) {
				t.Errorf("processed_at default = %v (%T)", pa.Default(), pa.Default())
			}
		})
	}
	tests := []struct{ name, avsc, wantErr string }{
		{"already clean", `{"type":"record","name":"R","fields":[{"name":"processed_at","type":"long"}]}`, "already has"},
		{"not a record", `"string"`, "want record"},
		{"not json", `{`, "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := schema.Clean(tt.avsc); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Clean() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
