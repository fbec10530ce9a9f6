package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const (
	dockerfile   = "Dockerfile"
	dockerignore = ".dockerignore"
	modulePath   = "github.com/sluicehq/sluice"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Line int    // first line, 1-based
	Cmd  string // upper case: FROM, RUN, ...
	Args string
}

// stage is one build stage: its FROM and what follows until the next FROM.
type stage struct {
	Image, Name string
	Body        []instruction
}

// parseDockerfile splits a Dockerfile into the ARGs before the first FROM and its stages.
// It knows enough of the syntax for these checks: comments, line continuations, FROM
// image [AS name]; heredocs are not used in this repository.
func parseDockerfile(t *testing.T, r io.Reader) (globalArgs map[string]string, stages []stage) {
	t.Helper()
	globalArgs = map[string]string{}
	var ins []instruction
	sc := bufio.NewScanner(r)
	var cur *instruction
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur == nil && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur != nil && strings.HasPrefix(line, "#") {
			continue // comments inside a continued instruction
		}
		cont := strings.HasSuffix(line, "\\")
		line = strings.TrimSuffix(line, "\\")
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			cur = &instruction{Line: n, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		} else {
			cur.Args += " " + strings.TrimSpace(line)
		}
		if !cont {
			ins = append(ins, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: line %d: continuation at end of file", dockerfile, cur.Line)
	}
	for _, in := range ins {
		switch {
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			var st stage
			for i, w := range f {
				if strings.HasPrefix(w, "--") {
					continue
				}
				st.Image = os.Expand(w, func(k string) string { return globalArgs[k] })
				if i+2 < len(f) && strings.EqualFold(f[i+1], "AS") {
					st.Name = f[i+2]
				}
				break
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			globalArgs[k] = strings.Trim(v, `"`)
		case len(stages) > 0:
			stages[len(stages)-1].Body = append(stages[len(stages)-1].Body, in)
		}
	}
	return globalArgs, stages
}

// find returns the instructions of st with command cmd.
func (st stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range st.Body {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// index returns the position in st of the first instruction for which match is true, or -1.
func (st stage) index(match func(instruction) bool) int {
	return slices.IndexFunc(st.Body, match)
}

func readDockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	_, stages := parseDockerfile(t, bytes.NewReader(b))
	return stages
}

// pinned reports whether image names a version: a tag with a digit that is not "latest",
// or a digest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "latest" && regexp.MustCompile(`\d`).MatchString(tag)
}

func TestDockerfileStages(t *testing.T) {
	stages := readDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d FROM lines, want a multi-stage build (builder and runtime)", len(stages))
	}
	for _, st := range stages {
		if !pinned(st.Image) {
			t.Errorf("FROM %s: pin the base image to a version tag", st.Image)
		}
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.Name == "" {
		t.Errorf("FROM %s: name the builder stage (AS build)", build.Image)
	}
	// DuckDB is a C++ library linked through cgo against glibc: the builder must have cgo
	// and glibc, and the runtime glibc and libstdc++.
	for _, st := range []stage{build, final} {
		if strings.Contains(st.Image, "alpine") || st.Image == "scratch" {
			t.Errorf("FROM %s: DuckDB needs glibc and libstdc++ (a Debian-based image)", st.Image)
		}
	}
	cgo := false
	for _, in := range append(build.find("ENV"), build.find("RUN")...) {
		if strings.Contains(in.Args, "CGO_ENABLED=1") {
			cgo = true
		}
	}
	if !cgo {
		t.Error("builder: CGO_ENABLED=1 is not set; DuckDB needs cgo")
	}

	copyMod := build.index(func(in instruction) bool {
		return in.Cmd == "COPY" && strings.Contains(in.Args, "go.mod") && strings.Contains(in.Args, "go.sum") && !strings.Contains(in.Args, ". .")
	})
	download := build.index(func(in instruction) bool { return in.Cmd == "RUN" && strings.Contains(in.Args, "go mod download") })
	copyAll := build.index(func(in instruction) bool {
		return in.Cmd == "COPY" && strings.HasSuffix(strings.TrimSpace(in.Args), ". .")
	})
	if copyMod < 0 || download < 0 || copyAll < 0 || !(copyMod < download && download < copyAll) {
		t.Errorf("builder: want COPY go.mod go.sum, then RUN go mod download, then COPY . . (so the module layer is cached); got positions %d, %d, %d", copyMod, download, copyAll)
	}
	goBuild := build.index(func(in instruction) bool { return in.Cmd == "RUN" && strings.Contains(in.Args, "go build") })
	if goBuild < 0 {
		t.Fatal("builder: no RUN go build")
	}
	args := build.Body[goBuild].Args
	for _, want := range []string{"-trimpath", "-s -w", "./cmd/sluice"} {
		if !strings.Contains(args, want) {
			t.Errorf("builder: go build without %s: %s", want, args)
		}
	}

	fromBuild := false
	for _, in := range final.find("COPY") {
		if strings.Contains(in.Args, "--from="+build.Name) && strings.Contains(in.Args, "/sluice") {
			fromBuild = true
		}
	}
	if !fromBuild {
		t.Errorf("runtime: the binary is not copied from the %s stage", build.Name)
	}
}

func TestDockerfileRuntime(t *testing.T) {
	stages := readDockerfile(t)
	final := stages[len(stages)-1]

	users := final.find("USER")
	if len(users) == 0 {
		t.Fatal("runtime: no USER; the image would run as root")
	}
	user := strings.TrimSpace(users[len(users)-1].Args)
	if uid, _, _ := strings.Cut(user, ":"); uid == "0" || uid == "root" || uid == "" {
		t.Errorf("runtime: USER %s is root", user)
	}

	hcs := final.find("HEALTHCHECK")
	if len(hcs) != 1 {
		t.Fatalf("runtime: %d HEALTHCHECK instructions, want 1", len(hcs))
	}
	_, cmd, ok := strings.Cut(hcs[0].Args, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s: no CMD", hcs[0].Args)
	}
	var argv []string
	if err := json.Unmarshal([]byte(cmd), &argv); err != nil {
		t.Fatalf("HEALTHCHECK CMD %s: use the JSON (exec) form: the runtime needs no shell: %v", cmd, err)
	}
	if len(argv) < 2 || argv[0] != "/sluice" || argv[1] != "health" {
		t.Errorf("HEALTHCHECK CMD %q, want [/sluice health ...]", argv)
	}

	var entry []string
	if es := final.find("ENTRYPOINT"); len(es) != 1 || json.Unmarshal([]byte(es[0].Args), &entry) != nil || !slices.Equal(entry, []string{"/sluice"}) {
		t.Errorf(`runtime: want exactly ENTRYPOINT ["/sluice"], got %v`, es)
	}
	exposed := false
	for _, in := range final.find("EXPOSE") {
		if slices.Contains(strings.Fields(in.Args), "8080") {
			exposed = true
		}
	}
	if !exposed {
		t.Error("runtime: EXPOSE 8080 missing (the API and every service's /metrics and /healthz)")
	}
}

func TestParseDockerfile(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nARG V=1.2\n\nFROM golang:${V} AS build\nRUN a \\\n  # note\n  b\nFROM --platform=linux/amd64 debian:12-slim\nUSER 1:1\n"
	args, stages := parseDockerfile(t, strings.NewReader(src))
	if args["V"] != "1.2" {
		t.Errorf("ARG V = %q", args["V"])
	}
	if len(stages) != 2 || stages[0].Image != "golang:1.2" || stages[0].Name != "build" || stages[1].Image != "debian:12-slim" || stages[1].Name != "" {
		t.Fatalf("stages = %+v", stages)
	}
	if got := stages[0].Body; len(got) != 1 || got[0].Args != "a b" || got[0].Line != 5 {
		t.Errorf("continued RUN = %+v", got)
	}
	for _, tt := range []struct {
		image string
		want  bool
	}{
		{"debian:12-slim", true}, {"golang:1.26-bookworm", true}, {"img@sha256:abc", true},
		{"debian", false}, {"debian:latest", false}, {"localhost:5000/img", false}, {"debian:bookworm-slim", false},
	} {
		if got := pinned(tt.image); got != tt.want {
			t.Errorf("pinned(%q) = %v, want %v", tt.image, got, tt.want)
		}
	}
}

// buildInputs lists, relative to the repository root, every file `go build ./cmd/sluice`
// reads from this module: go.mod, go.sum and the Go, cgo and embedded files of each
// package of the module the command imports.
func buildInputs(t *testing.T, root string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(t.Context(), goBin, "list", "-e", "-deps", "-json=Dir,ImportPath,Module,GoFiles,CgoFiles,EmbedFiles,CFiles,HFiles", "./cmd/sluice")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg struct {
			Dir, ImportPath                               string
			Module                                        *struct{ Path string }
			GoFiles, CgoFiles, EmbedFiles, CFiles, HFiles []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || pkg.Module.Path != modulePath {
			continue
		}
		for _, list := range [][]string{pkg.GoFiles, pkg.CgoFiles, pkg.EmbedFiles, pkg.CFiles, pkg.HFiles} {
			for _, f := range list {
				rel, err := filepath.Rel(root, filepath.Join(pkg.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, filepath.ToSlash(rel))
			}
		}
	}
	if len(files) < 10 {
		t.Fatalf("go list found only %v", files)
	}
	return files
}

func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, dockerignore))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(p string) bool {
		m, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return m
	}

	t.Run("keeps what the build reads", func(t *testing.T) {
		for _, p := range buildInputs(t, root) {
			if excluded(p) {
				t.Errorf("%s excludes %s, which go build ./cmd/sluice needs", dockerignore, p)
			}
		}
	})
	t.Run("drops the rest", func(t *testing.T) {
		for _, p := range []string{
			".git/HEAD", "bin/sluice", "node_modules/x/index.js", "k6/node_modules/k6/index.d.ts",
			"cmd/sluice/sluice.test", "pipeline/sink/cpu.prof", ".env", "terraform/envs/dev/.terraform/x",
			"terraform/envs/prod/terraform.tfstate", "sluice.duckdb", ".schemathesis/x",
		} {
			if !excluded(p) {
				t.Errorf("%s does not exclude %s", dockerignore, p)
			}
		}
	})
}
