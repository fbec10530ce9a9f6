package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:generate go run ./grafana/gen -out grafana/dashboards

// Values DashboardQueries puts in place of Grafana's built-in variables: the intervals of
// a 15-minute dashboard scraped every 15s or faster.
const (
	// RateInterval replaces $__rate_interval and $__interval.
	RateInterval = "1m"
	// RangeInterval replaces $__range: the dashboards' default time range.
	RangeInterval = "15m"
	// AllValue replaces a query or custom variable: the "All" value of every Sluice
	// dashboard variable.
	AllValue = ".*"
)

// Query is one panel target.
type Query struct {
	// Dashboard is the dashboard's uid, e.g. "sluice-overview".
	Dashboard string
	// Panel is the panel's title.
	Panel string
	// RefID is the target's refId within its panel ("A", "B", ...).
	RefID string
	// Expr is the target's PromQL with every Grafana variable substituted, ready for
	// Prometheus' /api/v1/query.
	Expr string
}

// dashboardFile is the part of Grafana's dashboard JSON model DashboardQueries reads.
type dashboardFile struct {
	UID        string      `json:"uid"`
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

// panelJSON is a panel, or a row whose panels are nested when it is collapsed.
type panelJSON struct {
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []panelJSON `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// DashboardQueries reads every dashboard JSON under dir and returns each panel target's expr with Grafana variables substituted for evaluation: $__rate_interval and $__interval -> "1m", $__range -> "15m", ${var}/$var of a query/custom variable -> ".*" when used inside =~ "..." matchers.
//
// Files are read in name order and panels in layout order, rows' nested panels
// included. A variable of a query or custom type may appear only inside the quoted
// value of a =~ matcher (label=~"$var", or inside a longer regex such as
// stage=~"agg\\.$var"), where ".*" is exactly Grafana's "All"; any other use, an
// undeclared variable, another variable type, a ${var:format} or another built-in
// variable is an error, as are a dashboard without uid or a target without expr. A dir
// without dashboards is an error too, so a wrong path never passes as "no queries".
func DashboardQueries(dir string) ([]Query, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("dashboards %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("dashboards %s: no *.json files", dir)
	}
	sort.Strings(files)
	var out []Query
	for _, f := range files {
		qs, err := fileQueries(f)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", filepath.Base(f), err)
		}
		out = append(out, qs...)
	}
	return out, nil
}

// fileQueries returns the substituted queries of one dashboard file.
func fileQueries(path string) ([]Query, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboardFile
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if d.UID == "" {
		return nil, errors.New("no uid")
	}
	vars := make(map[string]string, len(d.Templating.List))
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	var out []Query
	var walk func([]panelJSON) error
	walk = func(ps []panelJSON) error {
		for _, p := range ps {
			if err := walk(p.Panels); err != nil {
				return err
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("panel %q target %s: empty expr", p.Title, t.RefID)
				}
				expr, err := substitute(t.Expr, vars)
				if err != nil {
					return fmt.Errorf("panel %q target %s: %w", p.Title, t.RefID, err)
				}
				out = append(out, Query{Dashboard: d.UID, Panel: p.Title, RefID: t.RefID, Expr: expr})
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	return out, nil
}

// substitute replaces the Grafana variables in expr; vars maps the dashboard's
// variable names to their types. It scans PromQL string literals so that it knows
// whether a variable sits inside a =~ matcher's regex.
func substitute(expr string, vars map[string]string) (string, error) {
	var b strings.Builder
	var quote byte   // the open string literal's quote, 0 outside strings
	inRegex := false // the open string literal is the value of a =~ matcher
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case quote != 0 && c == '\\' && quote != '`' && i+1 < len(expr):
			b.WriteString(expr[i : i+2])
			i += 2
			continue
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
			inRegex = strings.HasSuffix(strings.TrimRight(expr[:i], " \t\r\n"), "=~")
		case c == '$':
			name, n, err := variableRef(expr[i:])
			if err != nil {
				return "", err
			}
			if n > 0 {
				v, err := resolve(name, quote != 0 && inRegex, vars)
				if err != nil {
					return "", err
				}
				b.WriteString(v)
				i += n
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	if quote != 0 {
		return "", fmt.Errorf("unterminated string in %q", expr)
	}
	return b.String(), nil
}

// variableRef parses the variable reference s starts with ($name or ${name}) and
// returns its name and length; n is 0 when the $ starts no reference ("$1" in
// label_replace).
func variableRef(s string) (name string, n int, err error) {
	if strings.HasPrefix(s, "${") {
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", 0, fmt.Errorf("unterminated ${ in %q", s)
		}
		name = s[2:end]
		if strings.ContainsAny(name, ":.") {
			return "", 0, fmt.Errorf("variable ${%s}: formats and fields are not supported", name)
		}
		return name, end + 1, nil
	}
	i := 1
	for i < len(s) && isNameByte(s[i], i == 1) {
		i++
	}
	if i == 1 {
		return "", 0, nil
	}
	return s[1:i], i, nil
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// resolve returns the value that replaces variable name.
func resolve(name string, inRegex bool, vars map[string]string) (string, error) {
	switch name {
	case "__rate_interval", "__interval":
		return RateInterval, nil
	case "__range":
		return RangeInterval, nil
	}
	if strings.HasPrefix(name, "__") {
		return "", fmt.Errorf("built-in variable $%s is not supported", name)
	}
	typ, ok := vars[name]
	switch {
	case !ok:
		return "", fmt.Errorf("variable $%s is not declared in templating", name)
	case typ != "query" && typ != "custom":
		return "", fmt.Errorf("variable $%s of type %q cannot be used in a query", name, typ)
	case !inRegex:
		return "", fmt.Errorf(`variable $%s must be used inside a =~ "..." matcher`, name)
	}
	return AllValue, nil
}
