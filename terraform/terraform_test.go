// Package terraform_test checks the Terraform configuration offline, without a terraform
// binary or cloud credentials: formatting, syntax, how modules are wired together, and
// that every ECS task logs, is health-checked and runs under a role of its own.
package terraform_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// root is the terraform/ directory; go test runs in the package directory.
const root = "."

// metaArgs are module-call arguments that are not input variables.
var metaArgs = []string{"source", "version", "count", "for_each", "providers", "depends_on"}

// module is what the checks need from one directory of .tf files.
type module struct {
	dir       string
	files     map[string]*hclsyntax.Body
	variables map[string]bool // name -> has a default
	outputs   map[string]bool
	locals    map[string]bool
	calls     map[string]*hclsyntax.Block
	resources map[string]*hclsyntax.Block // "type.name"
}

// hclFiles lists every .tf and .tfvars file under root, skipping .terraform caches.
func hclFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".tf") || strings.HasSuffix(path, ".tfvars") || strings.HasSuffix(path, ".hcl")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	if len(files) == 0 {
		t.Fatal("no Terraform files found")
	}
	return files
}

// loadModules parses every directory that holds .tf files.
func loadModules(t *testing.T) map[string]*module {
	t.Helper()
	p := hclparse.NewParser()
	mods := map[string]*module{}
	for _, path := range hclFiles(t) {
		if !strings.HasSuffix(path, ".tf") {
			continue
		}
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("parse %s: %v", path, diags)
		}
		dir := filepath.Dir(path)
		m := mods[dir]
		if m == nil {
			m = &module{dir: dir, files: map[string]*hclsyntax.Body{}, variables: map[string]bool{},
				outputs: map[string]bool{}, locals: map[string]bool{}, calls: map[string]*hclsyntax.Block{},
				resources: map[string]*hclsyntax.Block{}}
			mods[dir] = m
		}
		body := f.Body.(*hclsyntax.Body)
		m.files[path] = body
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				_, hasDefault := b.Body.Attributes["default"]
				m.variables[b.Labels[0]] = hasDefault
			case "output":
				m.outputs[b.Labels[0]] = true
			case "locals":
				for name := range b.Body.Attributes {
					m.locals[name] = true
				}
			case "module":
				m.calls[b.Labels[0]] = b
			case "resource":
				m.resources[b.Labels[0]+"."+b.Labels[1]] = b
			}
		}
	}
	return mods
}

// literalString evaluates an expression that must not reference anything.
func literalString(e hclsyntax.Expression) (string, bool) {
	if len(e.Variables()) > 0 {
		return "", false
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// callTarget resolves the directory of a module call with a local source.
func callTarget(t *testing.T, m *module, call *hclsyntax.Block) string {
	t.Helper()
	attr, ok := call.Body.Attributes["source"]
	if !ok {
		t.Fatalf("%s: module %q has no source", m.dir, call.Labels[0])
	}
	src, ok := literalString(attr.Expr)
	if !ok || !(strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../")) {
		t.Fatalf("%s: module %q: source must be a local path literal (got %q)", m.dir, call.Labels[0], src)
	}
	return filepath.Clean(filepath.Join(m.dir, src))
}

// walkAttrs calls fn for every attribute in body, nested blocks included.
func walkAttrs(body *hclsyntax.Body, fn func(*hclsyntax.Attribute)) {
	for _, a := range body.Attributes {
		fn(a)
	}
	for _, b := range body.Blocks {
		walkAttrs(b.Body, fn)
	}
}

// sortedKeys returns the module directories in a stable order for subtests.
func sortedKeys(mods map[string]*module) []string {
	keys := make([]string, 0, len(mods))
	for k := range mods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestFilesAreFormatted(t *testing.T) {
	for _, path := range hclFiles(t) {
		t.Run(path, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := hclwrite.Format(src); !bytes.Equal(got, src) {
				t.Errorf("%s is not formatted (terraform fmt would change it)", path)
			}
		})
	}
}

func TestFilesParse(t *testing.T) {
	p := hclparse.NewParser()
	for _, path := range hclFiles(t) {
		t.Run(path, func(t *testing.T) {
			if _, diags := p.ParseHCLFile(path); diags.HasErrors() {
				t.Errorf("%v", diags)
			}
		})
	}
}

func TestModuleCallsPassDeclaredAndRequiredVariables(t *testing.T) {
	mods := loadModules(t)
	calls := 0
	for _, dir := range sortedKeys(mods) {
		m := mods[dir]
		for name, call := range m.calls {
			calls++
			t.Run(dir+"/module."+name, func(t *testing.T) {
				target := mods[callTarget(t, m, call)]
				if target == nil {
					t.Fatalf("module %q: no .tf files at %s", name, callTarget(t, m, call))
				}
				for arg, attr := range call.Body.Attributes {
					if slices.Contains(metaArgs, arg) {
						continue
					}
					if _, ok := target.variables[arg]; !ok {
						t.Errorf("%s: module %q passes %q, which %s does not declare", attr.SrcRange, name, arg, target.dir)
					}
				}
				for v, hasDefault := range target.variables {
					if _, passed := call.Body.Attributes[v]; !hasDefault && !passed {
						t.Errorf("module %q (%s) does not pass required variable %q", name, target.dir, v)
					}
				}
			})
		}
	}
	if calls == 0 {
		t.Fatal("no module calls found")
	}
}

func TestReferencesResolve(t *testing.T) {
	mods := loadModules(t)
	for _, dir := range sortedKeys(mods) {
		m := mods[dir]
		t.Run(dir, func(t *testing.T) {
			for _, body := range m.files {
				walkAttrs(body, func(a *hclsyntax.Attribute) {
					for _, tr := range a.Expr.Variables() {
						checkTraversal(t, mods, m, tr)
					}
				})
			}
		})
	}
}

// checkTraversal reports a var.X, local.X or module.X.Y that does not exist.
func checkTraversal(t *testing.T, mods map[string]*module, m *module, tr hcl.Traversal) {
	t.Helper()
	attrName := func(i int) (string, bool) {
		if len(tr) <= i {
			return "", false
		}
		a, ok := tr[i].(hcl.TraverseAttr)
		return a.Name, ok
	}
	first, _ := attrName(1)
	switch tr.RootName() {
	case "var":
		if _, ok := m.variables[first]; !ok {
			t.Errorf("%s: var.%s is not declared in %s", tr.SourceRange(), first, m.dir)
		}
	case "local":
		if !m.locals[first] {
			t.Errorf("%s: local.%s is not defined in %s", tr.SourceRange(), first, m.dir)
		}
	case "module":
		call, ok := m.calls[first]
		if !ok {
			t.Errorf("%s: module.%s is not called in %s", tr.SourceRange(), first, m.dir)
			return
		}
		out, ok := attrName(2)
		if !ok {
			return // the whole module object
		}
		target := mods[callTarget(t, m, call)]
		if target == nil || !target.outputs[out] {
			t.Errorf("%s: module.%s.%s: %s has no output %q", tr.SourceRange(), first, out, callTarget(t, m, call), out)
		}
	}
}

func TestEnvTfvarsMatchVariables(t *testing.T) {
	mods := loadModules(t)
	envs, err := filepath.Glob(filepath.Join(root, "envs", "*", "terraform.tfvars"))
	if err != nil || len(envs) < 2 {
		t.Fatalf("want terraform.tfvars in envs/dev and envs/prod, found %v (%v)", envs, err)
	}
	p := hclparse.NewParser()
	for _, path := range envs {
		t.Run(path, func(t *testing.T) {
			f, diags := p.ParseHCLFile(path)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			// Every environment sets the variables of the one root configuration.
			m := mods["stack"]
			if m == nil {
				t.Fatal("no root configuration in stack/")
			}
			set := f.Body.(*hclsyntax.Body).Attributes
			for name, attr := range set {
				if _, ok := m.variables[name]; !ok {
					t.Errorf("%s: %q is not a variable of %s", attr.SrcRange, name, m.dir)
				}
			}
			for v, hasDefault := range m.variables {
				if _, ok := set[v]; !ok && !hasDefault {
					t.Errorf("required variable %q has no value in %s", v, path)
				}
			}
			// Its state has a key of its own: two environments never share a state.
			env := filepath.Base(filepath.Dir(path))
			bf, diags := p.ParseHCLFile(filepath.Join(filepath.Dir(path), "backend.hcl"))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			key, ok := bf.Body.(*hclsyntax.Body).Attributes["key"]
			if !ok {
				t.Fatalf("%s/backend.hcl sets no key", env)
			}
			if got, _ := literalString(key.Expr); got != "sluice/"+env+"/terraform.tfstate" {
				t.Errorf("%s/backend.hcl: key = %q, want sluice/%s/terraform.tfstate", env, got, env)
			}
		})
	}
}

// containers finds the container definitions inside a task definition's
// container_definitions expression: every object constructor with a name and an image.
func containers(e hclsyntax.Expression) []map[string]hclsyntax.Expression {
	var found []map[string]hclsyntax.Expression
	hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		if obj, ok := n.(*hclsyntax.ObjectConsExpr); ok {
			if keys := objectKeys(obj); keys["name"] != nil && keys["image"] != nil {
				found = append(found, keys)
			}
		}
		return nil
	})
	return found
}

// objectKeys maps the bare-word keys of an object constructor to their values.
func objectKeys(obj *hclsyntax.ObjectConsExpr) map[string]hclsyntax.Expression {
	keys := map[string]hclsyntax.Expression{}
	for _, item := range obj.Items {
		if k := hcl.ExprAsKeyword(item.KeyExpr); k != "" {
			keys[k] = item.ValueExpr
		} else if s, ok := literalString(item.KeyExpr); ok {
			keys[s] = item.ValueExpr
		}
	}
	return keys
}

// roleRef returns X for an expression that is exactly aws_iam_role.X.arn.
func roleRef(e hclsyntax.Expression) (string, bool) {
	st, ok := e.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(st.Traversal) != 3 || st.Traversal.RootName() != "aws_iam_role" {
		return "", false
	}
	name, ok1 := st.Traversal[1].(hcl.TraverseAttr)
	attr, ok2 := st.Traversal[2].(hcl.TraverseAttr)
	if !ok1 || !ok2 || attr.Name != "arn" {
		return "", false
	}
	return name.Name, true
}

func TestECSTasksLogHealthCheckAndOwnRoles(t *testing.T) {
	mods := loadModules(t)
	var taskModules []string
	for _, dir := range sortedKeys(mods) {
		m := mods[dir]
		for key, res := range m.resources {
			switch {
			case strings.HasPrefix(key, "aws_ecs_task_definition."):
				taskModules = append(taskModules, dir)
				t.Run(dir+"/"+key, func(t *testing.T) { checkTaskDefinition(t, m, res, dir != connectModule) })
			case strings.HasPrefix(key, "aws_ecs_service."):
				t.Run(dir+"/"+key, func(t *testing.T) {
					attr, ok := res.Body.Attributes["task_definition"]
					if !ok {
						t.Fatal("no task_definition")
					}
					refersToTask := false
					for _, tr := range attr.Expr.Variables() {
						if tr.RootName() == "aws_ecs_task_definition" {
							refersToTask = true
						}
					}
					if !refersToTask {
						t.Error("task_definition must refer to a task definition of the same module")
					}
				})
			}
		}
	}
	if len(taskModules) == 0 {
		t.Fatal("no aws_ecs_task_definition found")
	}
	// Each module that defines a Sluice task (and so its roles) must be instantiated once
	// per service, with distinct names, each running its own subcommand. The Kafka
	// Connect worker (connectModule) is one optional service of the stack.
	for _, taskDir := range taskModules {
		if taskDir == connectModule {
			t.Run("instances of "+taskDir, func(t *testing.T) { checkConnectInstance(t, mods) })
			continue
		}
		t.Run("instances of "+taskDir, func(t *testing.T) {
			var names []string
			for _, dir := range sortedKeys(mods) {
				m := mods[dir]
				for callName, call := range m.calls {
					if callTarget(t, m, call) != taskDir {
						continue
					}
					if _, ok := call.Body.Attributes["count"]; ok {
						t.Errorf("module %q: count would share one definition between services", callName)
					}
					nameAttr, ok := call.Body.Attributes["name"]
					name, lit := "", false
					if ok {
						name, lit = literalString(nameAttr.Expr)
					}
					if !lit {
						t.Errorf("module %q: name must be a literal service name", callName)
						continue
					}
					names = append(names, name)
					cmd, ok := call.Body.Attributes["command"]
					if !ok {
						t.Errorf("module %q: no command", callName)
						continue
					}
					v, diags := cmd.Expr.Value(nil)
					if diags.HasErrors() || !v.Type().IsTupleType() || v.LengthInt() != 1 || v.Index(cty.NumberIntVal(0)).AsString() != name {
						t.Errorf("module %q: command must be [%q] (sluice %s)", callName, name, name)
					}
				}
			}
			sort.Strings(names)
			if want := []string{"ingest", "process", "sink"}; !slices.Equal(names, want) {
				t.Errorf("services defined by %s: got %v, want %v", taskDir, names, want)
			}
		})
	}
}

// connectModule defines the optional Kafka Connect worker's task.
const connectModule = "modules/connect"

// checkConnectInstance checks that the stack instantiates the Connect worker once, off
// unless connect_enabled (default false).
func checkConnectInstance(t *testing.T, mods map[string]*module) {
	t.Helper()
	var calls []string
	for _, dir := range sortedKeys(mods) {
		m := mods[dir]
		for name, call := range m.calls {
			if callTarget(t, m, call) != connectModule {
				continue
			}
			calls = append(calls, dir+"/module."+name)
			cnt, ok := call.Body.Attributes["count"]
			if !ok || string(cnt.Expr.Range().SliceBytes(mustRead(t, cnt.Expr.Range().Filename))) != "var.connect_enabled ? 1 : 0" {
				t.Errorf("module %q: count must be var.connect_enabled ? 1 : 0", name)
			}
		}
	}
	if len(calls) != 1 || calls[0] != "stack/module.connect" {
		t.Errorf("Connect worker instantiated by %v, want stack/module.connect only", calls)
	}
	def := ""
	for _, body := range mods["stack"].files {
		for _, b := range body.Blocks {
			if b.Type == "variable" && b.Labels[0] == "connect_enabled" {
				if d, ok := b.Body.Attributes["default"]; ok {
					if v, diags := d.Expr.Value(nil); !diags.HasErrors() {
						def = v.GoString()
					}
				}
			}
		}
	}
	if def != "cty.False" {
		t.Errorf("stack variable connect_enabled must default to false (got %s)", def)
	}
}

// mustRead returns the content of a file.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkTaskDefinition checks one aws_ecs_task_definition: every container logs to
// CloudWatch and has a health check, the app container of a Sluice task checks itself
// with `sluice health`, and the task and execution roles are distinct roles of the
// module.
func checkTaskDefinition(t *testing.T, m *module, res *hclsyntax.Block, sluiceTask bool) {
	t.Helper()
	defs, ok := res.Body.Attributes["container_definitions"]
	if !ok {
		t.Fatal("no container_definitions")
	}
	cs := containers(defs.Expr)
	if len(cs) == 0 {
		t.Fatal("no container found in container_definitions")
	}
	sluiceHealth := false
	for i, c := range cs {
		label := fmt.Sprintf("container %d", i)
		if n, ok := literalString(c["name"]); ok {
			label = fmt.Sprintf("container %q", n)
		}
		logObj, ok := c["logConfiguration"].(*hclsyntax.ObjectConsExpr)
		if !ok {
			t.Errorf("%s: no logConfiguration object", label)
		} else if driver, ok := literalString(objectKeys(logObj)["logDriver"]); !ok || driver != "awslogs" {
			t.Errorf("%s: logConfiguration.logDriver must be \"awslogs\" (got %q)", label, driver)
		}
		hc, ok := c["healthCheck"].(*hclsyntax.ObjectConsExpr)
		if !ok {
			t.Errorf("%s: no healthCheck object", label)
			continue
		}
		cmd, ok := objectKeys(hc)["command"].(*hclsyntax.TupleConsExpr)
		if !ok || len(cmd.Exprs) < 2 {
			t.Errorf("%s: healthCheck.command must be a list like [\"CMD\", ...]", label)
			continue
		}
		var words []string
		for _, e := range cmd.Exprs {
			s, _ := literalString(e)
			words = append(words, s)
		}
		if len(words) >= 3 && words[0] == "CMD" && words[1] == "/sluice" && words[2] == "health" {
			sluiceHealth = true
		}
	}
	if sluiceTask && !sluiceHealth {
		t.Error("no container is health-checked with [\"CMD\", \"/sluice\", \"health\", ...]")
	}

	roles := map[string]string{}
	for _, attr := range []string{"task_role_arn", "execution_role_arn"} {
		a, ok := res.Body.Attributes[attr]
		if !ok {
			t.Errorf("no %s", attr)
			continue
		}
		name, ok := roleRef(a.Expr)
		if !ok {
			t.Errorf("%s must be aws_iam_role.<name>.arn of this module, so no other service shares it", attr)
			continue
		}
		role, ok := m.resources["aws_iam_role."+name]
		if !ok {
			t.Errorf("%s: aws_iam_role.%s is not defined in %s", attr, name, m.dir)
			continue
		}
		for _, meta := range []string{"count", "for_each"} {
			if _, ok := role.Body.Attributes[meta]; ok {
				t.Errorf("aws_iam_role.%s uses %s: one role per task definition expected", name, meta)
			}
		}
		roles[attr] = name
	}
	if roles["task_role_arn"] != "" && roles["task_role_arn"] == roles["execution_role_arn"] {
		t.Errorf("task and execution role are the same role (aws_iam_role.%s)", roles["task_role_arn"])
	}
}
