package terraform_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// A small evaluator of one module's locals and data sources, enough to read the IAM
// policy documents and alarms the way Terraform would build them, without a terraform
// binary: variables take the values a test gives (the rest are unknown), data sources
// the fixed values of fakeData, and locals are evaluated until none changes.

// Fixed values of the data sources the modules read, used to build expected ARNs.
const (
	fakePartition = "aws"
	fakeRegion    = "eu-central-1"
	fakeAccount   = "123456789012"
)

// fakeData is what data.aws_partition, data.aws_region and data.aws_caller_identity
// return in the evaluated modules.
func fakeData() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"aws_partition":       cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"partition": cty.StringVal(fakePartition)})}),
		"aws_region":          cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"region": cty.StringVal(fakeRegion), "name": cty.StringVal(fakeRegion)})}),
		"aws_caller_identity": cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"account_id": cty.StringVal(fakeAccount)})}),
	})
}

// tfFunctions are the Terraform functions the evaluated expressions use.
func tfFunctions() map[string]function.Function {
	return map[string]function.Function{
		"concat":   stdlib.ConcatFunc,
		"length":   stdlib.LengthFunc,
		"flatten":  stdlib.FlattenFunc,
		"distinct": stdlib.DistinctFunc,
		"keys":     stdlib.KeysFunc,
		"values":   stdlib.ValuesFunc,
		"merge":    stdlib.MergeFunc,
		"contains": stdlib.ContainsFunc,
		"join":     stdlib.JoinFunc,
		"format":   stdlib.FormatFunc,
		"lower":    stdlib.LowerFunc,
		"upper":    stdlib.UpperFunc,
		"replace":  stdlib.ReplaceFunc,
		"coalesce": stdlib.CoalesceFunc,
		"min":      stdlib.MinFunc,
		"max":      stdlib.MaxFunc,
		"range":    stdlib.RangeFunc,
		"tostring": stdlib.MakeToFunc(cty.String),
		"tolist":   stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset":    stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"sort":     stdlib.SortFunc,
	}
}

// evalModule is one module directory, parsed, with its locals evaluated.
type evalModule struct {
	dir    string
	blocks []*hclsyntax.Block
	ctx    *hcl.EvalContext
}

// loadEvalModule parses dir and evaluates its locals with vars (every other declared
// variable is unknown, or its default when it has one).
func loadEvalModule(t *testing.T, dir string, vars map[string]cty.Value) *evalModule {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files in %s (%v)", dir, err)
	}
	sort.Strings(paths)
	p := hclparse.NewParser()
	m := &evalModule{dir: dir}
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("parse %s: %v", path, diags)
		}
		m.blocks = append(m.blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	varVals := map[string]cty.Value{}
	for _, b := range m.blocks {
		if b.Type != "variable" {
			continue
		}
		name := b.Labels[0]
		varVals[name] = cty.DynamicVal
		if d, ok := b.Body.Attributes["default"]; ok {
			if v, diags := d.Expr.Value(&hcl.EvalContext{Functions: tfFunctions()}); !diags.HasErrors() {
				varVals[name] = v
			}
		}
	}
	for k, v := range vars {
		if _, ok := varVals[k]; !ok {
			t.Fatalf("%s declares no variable %q", dir, k)
		}
		varVals[k] = v
	}
	m.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(varVals), "data": fakeData()},
		Functions: tfFunctions(),
	}
	// Locals in dependency order, found by trying until a round adds nothing.
	pending := map[string]hcl.Expression{}
	for _, b := range m.blocks {
		if b.Type == "locals" {
			for name, a := range b.Body.Attributes {
				pending[name] = a.Expr
			}
		}
	}
	locals := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		for name, e := range pending {
			m.ctx.Variables["local"] = cty.ObjectVal(locals)
			v, diags := e.Value(m.ctx)
			if diags.HasErrors() {
				continue
			}
			locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			break // the rest refer to resources or modules: not needed here
		}
	}
	m.ctx.Variables["local"] = cty.ObjectVal(locals)
	return m
}

// local returns local.name, failing the test when it could not be evaluated.
func (m *evalModule) local(t *testing.T, name string) cty.Value {
	t.Helper()
	l := m.ctx.Variables["local"]
	if !l.Type().HasAttribute(name) {
		t.Fatalf("%s: local.%s could not be evaluated", m.dir, name)
	}
	return l.GetAttr(name)
}

// block returns the block of the given type and labels.
func (m *evalModule) block(t *testing.T, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	for _, b := range m.blocks {
		if b.Type == typ && strings.Join(b.Labels, ".") == strings.Join(labels, ".") {
			return b
		}
	}
	t.Fatalf("%s: no %s %s", m.dir, typ, strings.Join(labels, "."))
	return nil
}

// instances evaluates a block's for_each: one context per instance, keyed by each.key
// ("" and the module context for a block without for_each).
func (m *evalModule) instances(t *testing.T, b *hclsyntax.Block) map[string]*hcl.EvalContext {
	t.Helper()
	fe, ok := b.Body.Attributes["for_each"]
	if !ok {
		return map[string]*hcl.EvalContext{"": m.ctx}
	}
	v, diags := fe.Expr.Value(m.ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		t.Fatalf("%s: for_each of %s %v: %v", m.dir, b.Type, b.Labels, diags)
	}
	out := map[string]*hcl.EvalContext{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if v.Type().IsSetType() {
			k = ev
		}
		ctx := m.ctx.NewChild()
		ctx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": ev})}
		out[k.AsString()] = ctx
	}
	return out
}

// statement is one statement of an aws_iam_policy_document, evaluated.
type statement struct {
	sid       string
	effect    string
	actions   []string
	resources []string
}

// policyStatements evaluates the statements of one policy document instance, dynamic
// statement blocks included.
func policyStatements(t *testing.T, body *hclsyntax.Body, ctx *hcl.EvalContext) []statement {
	t.Helper()
	var out []statement
	for _, b := range body.Blocks {
		switch {
		case b.Type == "statement":
			out = append(out, evalStatement(t, b.Body, ctx))
		case b.Type == "dynamic" && b.Labels[0] == "statement":
			fe, ok := b.Body.Attributes["for_each"]
			if !ok {
				t.Fatalf("%s: dynamic statement without for_each", b.Range())
			}
			v, diags := fe.Expr.Value(ctx)
			if diags.HasErrors() || !v.IsWhollyKnown() {
				t.Fatalf("%s: for_each: %v", fe.SrcRange, diags)
			}
			var content *hclsyntax.Block
			for _, c := range b.Body.Blocks {
				if c.Type == "content" {
					content = c
				}
			}
			for it := v.ElementIterator(); it.Next(); {
				k, ev := it.Element()
				child := ctx.NewChild()
				child.Variables = map[string]cty.Value{"statement": cty.ObjectVal(map[string]cty.Value{"key": k, "value": ev})}
				out = append(out, evalStatement(t, content.Body, child))
			}
		}
	}
	return out
}

func evalStatement(t *testing.T, body *hclsyntax.Body, ctx *hcl.EvalContext) statement {
	t.Helper()
	s := statement{effect: "Allow"}
	str := func(name string) string {
		a, ok := body.Attributes[name]
		if !ok {
			return ""
		}
		v, diags := a.Expr.Value(ctx)
		if diags.HasErrors() || !v.IsKnown() || v.Type() != cty.String {
			t.Fatalf("%s: %s: %v", a.SrcRange, name, diags)
		}
		return v.AsString()
	}
	s.sid = str("sid")
	if e := str("effect"); e != "" {
		s.effect = e
	}
	s.actions = stringList(t, body, "actions", ctx)
	s.resources = stringList(t, body, "resources", ctx)
	return s
}

// stringList evaluates attribute name of body as a list of known strings.
func stringList(t *testing.T, body *hclsyntax.Body, name string, ctx *hcl.EvalContext) []string {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		return nil
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %s: %v", a.SrcRange, name, diags)
	}
	return ctyStrings(t, v, fmt.Sprintf("%s: %s", a.SrcRange, name))
}

// ctyStrings converts a known list, set or tuple of strings.
func ctyStrings(t *testing.T, v cty.Value, what string) []string {
	t.Helper()
	if !v.IsWhollyKnown() || v.IsNull() || !(v.Type().IsListType() || v.Type().IsSetType() || v.Type().IsTupleType()) {
		t.Fatalf("%s: not a known list of strings: %#v", what, v)
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.String {
			t.Fatalf("%s: element %#v is not a string", what, e)
		}
		out = append(out, e.AsString())
	}
	return out
}

// stringsVal is a Terraform list(string) value.
func stringsVal(ss []string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}
