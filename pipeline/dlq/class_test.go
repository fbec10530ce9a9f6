package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// codeError is a typed error, to check errors.As reaches through a classification.
type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestClassOf(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		name string
		err  error
		want dlq.Class
	}{
		{"permanent", dlq.AsPermanent(base), dlq.Permanent},
		{"transient", dlq.AsTransient(base), dlq.Transient},
		{"unclassified is transient", base, dlq.Transient},
		{"permanent wrapped once", fmt.Errorf("decode: %w", dlq.AsPermanent(base)), dlq.Permanent},
		{"permanent wrapped twice", fmt.Errorf("task 3: %w", fmt.Errorf("decode: %w", dlq.AsPermanent(base))), dlq.Permanent},
		{"transient wrapped", fmt.Errorf("registry: %w", dlq.AsTransient(base)), dlq.Transient},
		{"bare sentinel permanent", dlq.ErrPermanent, dlq.Permanent},
		{"permanent inside a join", errors.Join(base, dlq.AsPermanent(errors.New("bad"))), dlq.Permanent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := dlq.ClassOf(c.err); got != c.want {
				t.Errorf("ClassOf(%v) = %q, want %q", c.err, got, c.want)
			}
		})
	}
}

func TestAsClassKeepsError(t *testing.T) {
	base := &codeError{code: 7}
	cases := []struct {
		name     string
		mark     func(error) error
		sentinel error
		other    error
	}{
		{"permanent", dlq.AsPermanent, dlq.ErrPermanent, dlq.ErrTransient},
		{"transient", dlq.AsTransient, dlq.ErrTransient, dlq.ErrPermanent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := fmt.Errorf("handle purchases/0@12: %w", c.mark(base))
			if !errors.Is(err, c.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.sentinel)
			}
			if errors.Is(err, c.other) {
				t.Errorf("errors.Is(%v, %v) = true", err, c.other)
			}
			if !errors.Is(err, base) {
				t.Errorf("errors.Is(err, base) = false: the original error is lost")
			}
			var ce *codeError
			if !errors.As(err, &ce) || ce.code != 7 {
				t.Errorf("errors.As(err, *codeError) = %v, %v", ce, err)
			}
			if got, want := c.mark(base).Error(), base.Error(); got != want {
				t.Errorf("message = %q, want the original %q", got, want)
			}
			if c.mark(nil) != nil {
				t.Errorf("marking nil = %v, want nil", c.mark(nil))
			}
		})
	}
}

func TestChain(t *testing.T) {
	var order []string
	mw := func(name string) dlq.Middleware {
		return func(next dlq.Handler) dlq.Handler {
			return func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
				order = append(order, name)
				return next(ctx, rec, emit)
			}
		}
	}
	h := dlq.Chain(func(context.Context, *kgo.Record, func(*kgo.Record)) error {
		order = append(order, "handler")
		return nil
	}, mw("a"), mw("b"))
	if err := h(t.Context(), &kgo.Record{}, func(*kgo.Record) {}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "a,b,handler" {
		t.Errorf("order %s, want a,b,handler (the first middleware outermost)", got)
	}
}

// carried is an error that carries its class where it is made, as schema.ErrMalformed does.
type carried struct{ permanent bool }

func (c carried) Error() string   { return "carried" }
func (c carried) Permanent() bool { return c.permanent }

func TestClassOfCarried(t *testing.T) {
	for _, c := range []struct {
		err  error
		want dlq.Class
	}{
		{fmt.Errorf("decode: %w", carried{true}), dlq.Permanent},
		{fmt.Errorf("registry: %w", carried{false}), dlq.Transient},
		{dlq.AsTransient(carried{true}), dlq.Transient}, // an explicit class wins
		{dlq.AsPermanent(carried{false}), dlq.Permanent},
		{fmt.Errorf("%w: %w", schema.ErrMalformed, errors.New("bad bytes")), dlq.Permanent},
		{fmt.Errorf("%w", schema.ErrUnknownSchema), dlq.Permanent},
		{fmt.Errorf("%w", schema.ErrRegistryUnavailable), dlq.Transient},
		{errors.New("unknown"), dlq.Transient},
	} {
		if got := dlq.ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
