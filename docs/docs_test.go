package docs_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"go/scanner"
	"go/token"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The documents checked: the README and every Markdown file under docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join("..", "README.md")}
	more, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	return files
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// doc is a Markdown file split into prose (fenced code removed, inline code kept) and
// code (fenced blocks and inline code spans), with its line numbers kept.
type doc struct {
	path  string
	prose []line
	code  []line
}

type line struct {
	n    int
	text string
}

var inlineCode = regexp.MustCompile("`[^`]+`")

func parse(t *testing.T, path string) doc {
	t.Helper()
	d := doc{path: path}
	fenced := false
	for i, l := range strings.Split(read(t, path), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			d.code = append(d.code, line{i + 1, l})
			continue
		}
		d.prose = append(d.prose, line{i + 1, l})
		for _, c := range inlineCode.FindAllString(l, -1) {
			d.code = append(d.code, line{i + 1, strings.Trim(c, "`")})
		}
	}
	return d
}

var (
	mdLink  = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// anchors returns the GitHub heading anchors of a Markdown file: lower case, punctuation
// other than '-' and '_' dropped, spaces turned into '-', repeats numbered -1, -2, ...
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range parse(t, path).prose {
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(inlineCode.ReplaceAllStringFunc(m[1], func(s string) string { return strings.Trim(s, "`") })) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// Every relative link resolves to a file or directory of the repository, and every
// #anchor to a heading of its target.
func TestRelativeLinksResolve(t *testing.T) {
	for _, f := range markdownFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			n := 0
			for _, l := range parse(t, f).prose {
				for _, m := range mdLink.FindAllStringSubmatch(inlineCode.ReplaceAllString(l.text, ""), -1) {
					target := m[1]
					if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
						continue
					}
					n++
					file, frag, _ := strings.Cut(target, "#")
					path := f
					if file != "" {
						path = filepath.Join(filepath.Dir(f), file)
						if _, err := os.Stat(path); err != nil {
							t.Errorf("%s:%d: link %q: %v", f, l.n, target, err)
							continue
						}
					}
					if frag != "" {
						if !strings.HasSuffix(path, ".md") {
							t.Errorf("%s:%d: link %q: anchor into a file that is not Markdown", f, l.n, target)
						} else if !anchors(t, path)[frag] {
							t.Errorf("%s:%d: link %q: no heading with anchor #%s in %s", f, l.n, target, frag, path)
						}
					}
				}
			}
			t.Logf("%d relative links", n)
		})
	}
}

// Every `sluice <command>` in code (fenced blocks and inline spans) is a command of
// cmd/sluice/main.go.
func TestSluiceCommandsExist(t *testing.T) {
	src := read(t, filepath.Join("..", "cmd", "sluice", "main.go"))
	m := regexp.MustCompile(`(?s)cmds := map\[string\]command\{(.*?)\n\t\}`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal("no command map in cmd/sluice/main.go")
	}
	cmds := map[string]bool{}
	for _, c := range regexp.MustCompile(`"([a-z-]+)":`).FindAllStringSubmatch(m[1], -1) {
		cmds[c[1]] = true
	}
	if !cmds["dev"] || len(cmds) < 5 {
		t.Fatalf("command map parsed as %v", cmds)
	}
	use := regexp.MustCompile(`(?:^|[\s/("'])sluice ([a-z][a-z-]*)`)
	for _, f := range markdownFiles(t) {
		for _, l := range parse(t, f).code {
			for _, u := range use.FindAllStringSubmatch(l.text, -1) {
				if !cmds[u[1]] {
					t.Errorf("%s:%d: `sluice %s` is not a command (have %v)", f, l.n, u[1], slices.Sorted(maps.Keys(cmds)))
				}
			}
		}
	}
}

// Every `make <target>` in code is a target of the Makefile.
func TestMakeTargetsExist(t *testing.T) {
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_.-]+):([^=]|$)`).FindAllStringSubmatch(read(t, filepath.Join("..", "Makefile")), -1) {
		targets[m[1]] = true
	}
	if !targets["test"] {
		t.Fatalf("Makefile targets parsed as %v", targets)
	}
	use := regexp.MustCompile(`(?:^|[\s(])make ([a-z][a-z0-9_-]*)`)
	for _, f := range markdownFiles(t) {
		for _, l := range parse(t, f).code {
			for _, u := range use.FindAllStringSubmatch(l.text, -1) {
				if !targets[u[1]] {
					t.Errorf("%s:%d: `make %s` is not a Makefile target", f, l.n, u[1])
				}
			}
		}
	}
}

// Every metric name sluice_* a document mentions is a string literal in the production
// code under pipeline/ (histograms may be named with _bucket, _count or _sum). Names
// under sluice_kafka_ are franz-go's kprom metrics, registered with that prefix; a name
// ending in * is a prefix that some literal must start with.
func TestMetricNamesExist(t *testing.T) {
	var code bytes.Buffer
	err := filepath.WalkDir(filepath.Join("..", "pipeline"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		code.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	src := code.String()
	literals := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(sluice_[a-z0-9_]+)"`).FindAllStringSubmatch(src, -1) {
		literals[m[1]] = true
	}
	if !literals["sluice_kafka"] {
		t.Fatal(`no "sluice_kafka" kprom namespace in pipeline/`)
	}
	known := func(name string) bool {
		if literals[name] || strings.HasPrefix(name, "sluice_kafka_") {
			return true
		}
		for _, s := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, s); ok && literals[b] {
				return true
			}
		}
		return false
	}
	mention := regexp.MustCompile(`\bsluice_[a-z0-9_]+\*?`)
	n := 0
	for _, f := range markdownFiles(t) {
		for _, l := range append(parse(t, f).prose, parse(t, f).code...) {
			for _, name := range mention.FindAllString(l.text, -1) {
				n++
				if prefix, ok := strings.CutSuffix(name, "*"); ok {
					if !slices.ContainsFunc(slices.Collect(maps.Keys(literals)), func(s string) bool { return strings.HasPrefix(s+"_", prefix) }) {
						t.Errorf("%s:%d: no metric starts with %s", f, l.n, prefix)
					}
					continue
				}
				if !known(name) {
					t.Errorf("%s:%d: metric %s is not in pipeline/", f, l.n, name)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no metric mentioned anywhere: the pattern is broken")
	}
}

// docs/costs.csv parses; every line's monthly cost is its unit price times its quantity;
// each environment has TOTAL rows for aws, snowflake and all that equal the sums of its
// lines; and docs/COSTS.md quotes every total.
func TestCostsCSV(t *testing.T) {
	f, err := os.Open("costs.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"env", "provider", "service", "item", "unit", "unit_price_usd", "quantity", "monthly_usd", "price_basis"}
	if !slices.Equal(recs[0], want) {
		t.Fatalf("header %v, want %v", recs[0], want)
	}
	num := func(row int, s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("costs.csv line %d: %q: %v", row+1, s, err)
		}
		return v
	}
	type key struct{ env, provider string }
	sums := map[key]float64{}
	totals := map[key]float64{}
	envs := map[string]bool{}
	for i, r := range recs[1:] {
		row := i + 1
		env, provider, service := r[0], r[1], r[2]
		envs[env] = true
		monthly := num(row, r[7])
		if service == "TOTAL" {
			if _, dup := totals[key{env, provider}]; dup {
				t.Errorf("costs.csv line %d: a second %s total for %s", row+1, provider, env)
			}
			totals[key{env, provider}] = monthly
			continue
		}
		if provider != "aws" && provider != "snowflake" {
			t.Errorf("costs.csv line %d: provider %q, want aws or snowflake", row+1, provider)
		}
		if !slices.Contains([]string{"list", "estimate", "assumed usage"}, r[8]) {
			t.Errorf("costs.csv line %d: price_basis %q", row+1, r[8])
		}
		if got := num(row, r[5]) * num(row, r[6]); math.Abs(got-monthly) > 0.0051 {
			t.Errorf("costs.csv line %d (%s %s): %s x %s = %.4f, not %s", row+1, env, r[3], r[5], r[6], got, r[7])
		}
		sums[key{env, provider}] += monthly
		sums[key{env, "all"}] += monthly
	}
	if !envs["dev"] || !envs["prod"] {
		t.Errorf("environments %v, want dev and prod", envs)
	}
	costs := read(t, "COSTS.md")
	for env := range envs {
		for _, p := range []string{"aws", "snowflake", "all"} {
			k := key{env, p}
			got, ok := totals[k]
			if !ok {
				t.Errorf("costs.csv: no %s TOTAL row for %s", p, env)
				continue
			}
			if math.Abs(got-sums[k]) > 0.005 {
				t.Errorf("costs.csv: %s %s total %.2f, lines sum to %.2f", env, p, got, sums[k])
			}
			if s := money(got); !strings.Contains(costs, s) {
				t.Errorf("COSTS.md does not quote the %s %s total %s", env, p, s)
			}
		}
	}
}

// money formats 1234.5 as "$1,234.50".
func money(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	whole, cents, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return "$" + b.String() + "." + cents
}

// The README keeps the two set-up commands a newcomer starts with.
func TestReadmeSetupCommands(t *testing.T) {
	readme := read(t, filepath.Join("..", "README.md"))
	for _, c := range []string{"go run ./cmd/sluice dev", "make test"} {
		if !strings.Contains(readme, c) {
			t.Errorf("README.md lost the set-up command %q", c)
		}
	}
}

// Code comments cite only what the repository has: every cited Markdown file (such as
// docs/DESIGN.md#headers) or file under docs/ exists, relative to the repository root or
// to the commenting file's directory, and every #anchor is a heading of it; and no comment
// cites the design notes kept outside the repository (outsideDoc): cite the sections of
// docs/DESIGN.md instead.
func TestCodeCitationsResolve(t *testing.T) {
	root := ".."
	files, cites := 0, 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "vendor" || n == "testdata" || n == "target" || n == "docsui") {
				return filepath.SkipDir
			}
			return nil
		}
		if n := d.Name(); n == "target" || n == "docsui" {
			return nil
		}
		goSrc := strings.HasSuffix(p, ".go")
		if !goSrc && !commentedText(p) {
			return nil
		}
		files++
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n, errs := citationErrors(t, root, p, src)
		if !goSrc {
			n, errs = textCitationErrors(t, root, p, src)
		}
		cites += n
		for _, e := range errs {
			t.Error(e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 || cites < 10 {
		t.Fatalf("read %d source files and %d citations: the walk or the pattern is broken", files, cites)
	}
	t.Logf("%d citations in the comments of %d source files (Go, and the scripts, Terraform, Java and configs beside them)", cites, files)
}

var (
	// outsideDoc matches citations of the design documents kept outside the repository.
	outsideDoc = regexp.MustCompile(`\bSPEC\b|\bSTYLE rule|WINDOWS-REFERENCE|PROCESSOR-SHAPE|\bshared/[A-Z]`)
	// fileCite matches a cited Markdown file (with an optional #anchor) or a file under docs/.
	fileCite = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./*-])((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.md|docs/[A-Za-z0-9_./-]*[A-Za-z0-9_-])(#[A-Za-z0-9_-]+)?`)
)

// commentedText reports whether path is a non-Go source whose comments the citation
// check reads line by line: scripts, k6 and TypeScript, Terraform, Java, YAML, Make.
func commentedText(path string) bool {
	switch filepath.Ext(path) {
	case ".js", ".ts", ".sh", ".py", ".tf", ".java", ".yml", ".yaml", ".hcl", ".properties":
		return true
	}
	b := filepath.Base(path)
	return b == "Makefile" || b == "Dockerfile" || strings.HasPrefix(b, "run")
}

// textCitationErrors is citationErrors for a non-Go source: every line's comment (from
// "//", "#" or a "*" continuation on) is checked the same way.
func textCitationErrors(t *testing.T, root, path string, src []byte) (int, []string) {
	t.Helper()
	n := 0
	var errs []string
	for i, line := range strings.Split(string(src), "\n") {
		// A comment starts at "//", at a "#" that begins a word (not an anchor such as
		// API.md#send-events), or at a "*" that begins the line.
		c := strings.Index(line, "//")
		for j := strings.IndexByte(line, '#'); j >= 0; j = nextByte(line, '#', j) {
			if j == 0 || line[j-1] == ' ' || line[j-1] == '\t' {
				if c < 0 || j < c {
					c = j
				}
				break
			}
		}
		if strings.HasPrefix(strings.TrimSpace(line), "*") {
			c = strings.Index(line, "*")
		}
		if c < 0 {
			continue
		}
		k, e := commentCitationErrors(t, root, path, i+1, line[c:])
		n += k
		errs = append(errs, e...)
	}
	return n, errs
}

// nextByte is the index of the next b in s after i, or -1.
func nextByte(s string, b byte, i int) int {
	if k := strings.IndexByte(s[i+1:], b); k >= 0 {
		return i + 1 + k
	}
	return -1
}

// citationErrors checks the comments of the Go source src (at path, in the repository
// at root) and returns how many file citations they hold and what is wrong with them.
func citationErrors(t *testing.T, root, path string, src []byte) (int, []string) {
	t.Helper()
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile(path, -1, len(src)), src, nil, scanner.ScanComments)
	n := 0
	var errs []string
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok != token.COMMENT {
			continue
		}
		k, e := commentCitationErrors(t, root, path, fset.Position(pos).Line, lit)
		n += k
		errs = append(errs, e...)
	}
	return n, errs
}

// commentCitationErrors checks one comment (lit, at line of path): the documents outside
// the repository, and every cited file and section.
func commentCitationErrors(t *testing.T, root, path string, line int, lit string) (int, []string) {
	t.Helper()
	n := 0
	var errs []string
	if m := outsideDoc.FindString(lit); m != "" {
		errs = append(errs, fmt.Sprintf("%s:%d: comment cites %q, a document outside the repository: cite docs/DESIGN.md#<section>", path, line, m))
	}
	for _, m := range fileCite.FindAllStringSubmatch(lit, -1) {
		file, frag := m[1], strings.TrimPrefix(m[2], "#")
		n++
		target := ""
		for _, c := range []string{filepath.Join(root, file), filepath.Join(filepath.Dir(path), file)} {
			if _, err := os.Stat(c); err == nil {
				target = c
				break
			}
		}
		switch {
		case target == "":
			errs = append(errs, fmt.Sprintf("%s:%d: comment cites %s, which is not in the repository", path, line, file))
		case frag != "" && !strings.HasSuffix(target, ".md"):
			errs = append(errs, fmt.Sprintf("%s:%d: comment cites %s#%s: an anchor into a file that is not Markdown", path, line, file, frag))
		case frag != "" && !anchors(t, target)[frag]:
			errs = append(errs, fmt.Sprintf("%s:%d: comment cites %s#%s: no such section in %s", path, line, file, frag, file))
		}
	}
	return n, errs
}

// The citation check fails on what it is for: a missing file, a missing section and the
// documents outside the repository; and passes what resolves.
func TestCodeCitationsCatch(t *testing.T) {
	path := filepath.Join("..", "pipeline", "dlq", "x.go")
	for _, c := range []struct {
		comment string
		bad     bool
	}{
		{"// Header names (docs/DESIGN.md#headers).", false},
		{"// See docs/ERRORS.md and README.md.", false},
		{"/* the tables in docs/costs.csv */", false},
		{"// Header names (docs/DESIGN.md#no-such-section).", true},
		{"// The metric catalog (notes/metrics.md).", true},
		{"// See docs/NOPE.md.", true},
		{"// Retry defaults (SPEC section 7).", true},
		{"// decorators around a Handler (STYLE rule 6).", true},
		{"// edge case 13 of WINDOWS-REFERENCE.", true},
		{"// and SPEC says such a record joins.", true},
	} {
		src := []byte("package dlq\n\n" + c.comment + "\nvar x = \"SPEC section 1 in a string is not a comment\"\n")
		_, errs := citationErrors(t, "..", path, src)
		if got := len(errs) > 0; got != c.bad {
			t.Errorf("%q: errors %q, want bad=%v", c.comment, errs, c.bad)
		}
	}
}

// The same check on the scripts, k6 and Terraform sources: comments after "//", "#" or a
// "*" continuation.
func TestTextCitationsCatch(t *testing.T) {
	for _, c := range []struct {
		path, line string
		bad        bool
	}{
		{"k6/x.js", "// POST /api/v1/events (docs/API.md#send-events).", false},
		{"k6/x.js", "// one JSON object per request (SPEC section 4).", true},
		{"k6/x.js", " * a WebSocket (docs/API.md#no-such-section)", true},
		{"terraform/x.tf", "  # SLUICE_<FLAG> (README.md#commands)", false},
		{"terraform/x.tf", "  # SLUICE_<FLAG> (SPEC section 2)", true},
		{"scripts/x.sh", "echo done # see notes/run.md", true},
	} {
		if !commentedText(c.path) {
			t.Fatalf("%s is not checked", c.path)
		}
		_, errs := textCitationErrors(t, "..", filepath.Join("..", c.path), []byte("x = 1\n"+c.line+"\n"))
		if got := len(errs) > 0; got != c.bad {
			t.Errorf("%s %q: errors %q, want bad=%v", c.path, c.line, errs, c.bad)
		}
	}
}
