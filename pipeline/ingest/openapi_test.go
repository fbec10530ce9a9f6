package ingest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// openAPIDoc is the part of /openapi.json the tests read.
type openAPIDoc struct {
	OpenAPI string                                 `json:"openapi"`
	Paths   map[string]map[string]openAPIOperation `json:"paths"`
}

type openAPIOperation struct {
	RequestBody *struct {
		Content map[string]struct {
			Example json.RawMessage `json:"example"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]any `json:"responses"`
}

func getOpenAPI(t *testing.T, s *testServer) openAPIDoc {
	t.Helper()
	res := s.do(t, "GET", "/openapi.json", "", "", nil)
	if res.status != 200 {
		t.Fatalf("GET /openapi.json: %d", res.status)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(res.body, &doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return doc
}

// Every route the server answers is in /openapi.json with its method; a {topic} route is
// documented once per topic, with that topic's event schema.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	s := newTestServer(t, nil, nil)
	doc := getOpenAPI(t, s)
	topics := []string{}
	for _, tp := range s.schemas.topics() {
		topics = append(topics, tp.Name)
	}
	checked := 0
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "OPTIONS" || r.Method == "USE" || r.Path == "/" || strings.Contains(r.Path, "*") {
			continue
		}
		paths := []string{r.Path}
		if tmpl := strings.ReplaceAll(r.Path, ":topic", "{topic}"); tmpl != r.Path && doc.Paths[tmpl] != nil {
			paths = []string{tmpl}
		} else if strings.Contains(r.Path, ":topic") {
			paths = nil
			for _, tp := range topics {
				paths = append(paths, strings.ReplaceAll(r.Path, ":topic", tp))
			}
		}
		for _, p := range paths {
			ops, ok := doc.Paths[p]
			if !ok {
				t.Errorf("route %s %s: path %s not documented", r.Method, r.Path, p)
				continue
			}
			if _, ok := ops[strings.ToLower(r.Method)]; !ok {
				t.Errorf("route %s %s: method not documented for %s", r.Method, r.Path, p)
			}
			checked++
		}
	}
	if checked < 8 {
		t.Fatalf("only %d documented routes checked", checked)
	}
}

// Every example in /openapi.json is accepted by the API it documents.
func TestOpenAPIExamplesValidate(t *testing.T) {
	ex := func(topic string) map[string]any {
		return purchase(nil) // the test schemas' purchases; other topics get none
	}
	s := newTestServer(t, nil, func(c *ingest.Config) {
		c.Examples = func(topic string) map[string]any {
			if topic == "purchases" {
				return ex(topic)
			}
			return nil
		}
	})
	doc := getOpenAPI(t, s)
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.RequestBody == nil {
				continue
			}
			for ct, c := range op.RequestBody.Content {
				if len(c.Example) == 0 {
					continue
				}
				res := s.do(t, strings.ToUpper(method), path, ct, string(c.Example), nil)
				if res.status != 202 {
					t.Errorf("example of %s %s (%s) answered %d: %s", method, path, ct, res.status, res.body)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no example checked")
	}
}

// GET /docs is a self-contained page that reads /openapi.json.
func TestDocsPage(t *testing.T) {
	s := newTestServer(t, nil, nil)
	res := s.do(t, "GET", "/docs", "", "", nil)
	if res.status != 200 || !strings.Contains(string(res.body), "/openapi.json") ||
		!strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", res.status, res.header.Get("Content-Type"))
	}
}
