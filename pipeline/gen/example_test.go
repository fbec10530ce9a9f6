package gen_test

import (
	"context"
	"fmt"
	"time"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/gen"
)

func ExampleGenerator_Next() {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	g, err := gen.New(gen.Purchases, gen.Options{Seed: 42, Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(g.Next())
	fmt.Println(string(b))
	// Output:
	// {"amount":46.82,"country":"BR","currency":"USD","device":"mobile","event_id":"01M8E754806C7J2Y9T7CR9MCAN","event_time":"2026-11-27T10:00:00.000Z","items":1,"order_id":"o-d42d4126ab73e804","product_id":"p-24","session_id":"s-c7f5196549f16c35","user_id":"u-9989"}
}

func ExampleGenerator_NextInvalid() {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	g, _ := gen.New(gen.Purchases, gen.Options{Seed: 42, Now: func() time.Time { return now }})
	for range 3 {
		_, what := g.NextInvalid()
		fmt.Println(what)
	}
	// Output:
	// currency: not one of EUR|USD|GBP|JPY|CHF
	// currency: not one of EUR|USD|GBP|JPY|CHF
	// amount: negative
}

// printTarget prints what it is sent instead of posting it.
type printTarget struct{}

func (printTarget) Send(_ context.Context, topic string, events []map[string]any) error {
	fmt.Println(topic, len(events))
	return nil
}

func ExampleRun() {
	now := func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }
	gens := map[string]*gen.Generator{}
	for _, topic := range gen.Topics() {
		g, _ := gen.New(topic, gen.Options{Seed: 1, Now: now})
		gens[topic] = g
	}
	// In production: &gen.HTTPTarget{BaseURL: "http://127.0.0.1:8080"}, a real rate and
	// no WithSleep.
	noSleep := gen.WithSleep(func(context.Context, time.Duration) error { return nil })
	sent, err := gen.Run(context.Background(), printTarget{}, gens, 1000, 100, 1000, nil, noSleep)
	fmt.Println(sent, err)
	// Output:
	// page_views 100
	// clicks 100
	// page_views 100
	// page_views 100
	// clicks 100
	// page_views 100
	// purchases 100
	// page_views 100
	// clicks 100
	// page_views 100
	// 1000 <nil>
}
