package dlq_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

func TestWaitErrorMessage(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 5, 0, time.UTC)
	cases := []struct {
		name string
		w    *dlq.WaitError
		want string
	}{
		{"without cause", &dlq.WaitError{Until: at, Reason: "not-before"}, "wait until 2026-11-27T12:00:05Z (not-before)"},
		{"with cause", &dlq.WaitError{Until: at, Reason: "circuit-open", Err: errors.New("registry: timeout")},
			"wait until 2026-11-27T12:00:05Z (circuit-open): registry: timeout"},
		{"sub-second time", &dlq.WaitError{Until: at.Add(250 * time.Millisecond), Reason: "ordered-retry"},
			"wait until 2026-11-27T12:00:05.25Z (ordered-retry)"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAsWait(t *testing.T) {
	cause := dlq.AsPermanent(errors.New("bad"))
	w := &dlq.WaitError{Until: routeNow, Reason: "circuit-open", Err: cause}
	cases := []struct {
		name string
		err  error
		want *dlq.WaitError
	}{
		{"nil", nil, nil},
		{"plain", errors.New("x"), nil},
		{"classified", dlq.AsTransient(errors.New("x")), nil},
		{"itself", w, w},
		{"wrapped", fmt.Errorf("stage clean: %w", w), w},
		{"joined", errors.Join(errors.New("x"), w), w},
		{"inside attempts", &dlq.AttemptsError{Attempts: 2, Err: w}, w},
		{"inside a dependency", dlq.FromDependency("db", w), w},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := dlq.AsWait(tt.err)
			if ok != (tt.want != nil) || got != tt.want {
				t.Errorf("AsWait = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

func TestWaitErrorUnwrap(t *testing.T) {
	cause := dlq.AsPermanent(errors.New("bad"))
	w := &dlq.WaitError{Until: routeNow, Reason: "ordered-retry", Err: cause}
	if !errors.Is(w, cause) || !errors.Is(w, dlq.ErrPermanent) {
		t.Errorf("WaitError hides its cause %v", cause)
	}
	if w.Unwrap() != cause {
		t.Errorf("Unwrap = %v, want %v", w.Unwrap(), cause)
	}
	if got := (&dlq.WaitError{Until: routeNow}).Unwrap(); got != nil {
		t.Errorf("Unwrap without cause = %v, want nil", got)
	}
}
