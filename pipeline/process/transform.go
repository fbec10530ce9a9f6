package process

import (
	"context"
)

// Transform is user code that the clean stage runs on every event that passed the rules
// and is not a duplicate, before it is re-encoded to <topic>.clean: enrichment from a
// service, a lookup, a redaction. It may change ev in place (the result must still fit
// the clean schema). Transforms are registered explicitly in code, per topic
// (service.Deps.Transforms, harness.WithTransform); there is no global registry.
//
// Its errors take the clean stage's failure path (docs/ERRORS.md): an error marked with
// dlq.AsPermanent dead-letters the record at once; any other error is transient and is
// retried in place, then through the retry topics, then dead-lettered, and counts against
// the circuit breaker named by Dependency. Apply may be called more than once for one
// event (retries, redelivery after a crash), so its side effects must be idempotent.
type Transform interface {
	// Dependency names the external system Apply calls; its failures open the breaker
	// of that name. Empty: "default".
	Dependency() string
	// Apply transforms one event of topic.
	Apply(ctx context.Context, topic string, ev map[string]any) error
}

// TransformFunc adapts a function to Transform, with the dependency name dep.
func TransformFunc(dep string, fn func(ctx context.Context, topic string, ev map[string]any) error) Transform {
	return transformFunc{dep, fn}
}

type transformFunc struct {
	dep string
	fn  func(ctx context.Context, topic string, ev map[string]any) error
}

func (t transformFunc) Dependency() string { return t.dep }
func (t transformFunc) Apply(ctx context.Context, topic string, ev map[string]any) error {
	return t.fn(ctx, topic, ev)
}
