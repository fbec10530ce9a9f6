package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// builtinFS holds the schemas of the default event types.
//
//go:embed avsc/*.avsc
var builtinFS embed.FS

// Builtin returns the text of an embedded .avsc (e.g. "purchases.avsc").
func Builtin(name string) (string, bool) {
	if name == "" || filepath.Base(name) != name {
		return "", false
	}
	b, err := builtinFS.ReadFile("avsc/" + name)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// BuiltinNames lists the embedded .avsc names in lexical order ("clicks.avsc",
// "page_views.avsc", "purchases.avsc").
func BuiltinNames() []string {
	entries, err := fs.ReadDir(builtinFS, "avsc")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Load returns the .avsc text for name: a built-in name, else a file path relative to dir.
// An absolute name is used as is. The text must parse as an Avro record schema, so a bad
// file is reported here, with its path, rather than when it is first registered.
func Load(name, dir string) (string, error) {
	if text, ok := Builtin(name); ok {
		return text, nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("schema: load %s: %w", name, err)
	}
	if _, err := parseRecord(string(b)); err != nil {
		return "", fmt.Errorf("schema: load %s: %w", path, err)
	}
	return string(b), nil
}
