package sink_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// FuzzWriteDecodedRecord decodes random Avro bodies with the clean purchases schema and
// a schema of every type, and writes each decoded record as a one-row batch. Write must
// either commit the row or reject it as a *RejectedError: any other error would make
// the sink retry a record forever instead of dead-lettering it.
func FuzzWriteDecodedRecord(f *testing.F) {
	schemas := []avro.Schema{cleanSchema(f, "purchases"), mustParse(f, everyType)}
	tables := []string{"PURCHASES", "EVERY"}
	wide, _ := new(big.Rat).SetString("12345.125")
	seeds := []map[string]any{
		purchase(0, 1).Values,
		{
			"event_id": "e1", "b": true, "i": int32(7), "l": int64(1) << 40, "f": float32(1.5), "d": 2.25,
			"s": "hi", "u": "6f1c2d4e-0000-4000-8000-000000000001", "e": "B",
			"raw": []byte{0, 1, 2}, "fx": [4]byte{9, 8, 7, 6},
			"dec": big.NewRat(-31415, 100), "wide": wide,
			"day": time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), "tod": 10 * time.Hour,
			"tsm": t0, "lts": t0, "tags": []string{"a"}, "attrs": map[string]int64{"a": 1},
			"addr": map[string]any{"city": "Berlin"}, "opt": nil, "either": nil,
		},
	}
	for i, s := range schemas {
		b, err := avro.Marshal(s, seeds[i])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)/2])
	}

	w := openDuck(f)
	for i, s := range schemas {
		if err := w.EnsureTable(f.Context(), tables[i], s); err != nil {
			f.Fatal(err)
		}
	}
	epoch, next, err := w.Claim(f.Context(), "fuzz", 0)
	if err != nil {
		f.Fatal(err)
	}
	// Bounded allocations, as a decoder of untrusted bytes must be configured.
	dec := avro.Config{MaxSliceAllocSize: 1 << 16, MaxByteSliceSize: 1 << 16}.Freeze()
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		i := int(which) % len(schemas)
		var rec map[string]any
		if err := dec.Unmarshal(schemas[i], body, &rec); err != nil {
			return
		}
		b := sink.Batch{Table: tables[i], Topic: "fuzz", Start: next, End: next + 1, Epoch: epoch,
			Rows: []sink.Row{{Offset: next, EventID: "fuzz", Values: rec}}}
		err := w.Write(t.Context(), b)
		if errors.Is(err, sink.ErrRowRejected) {
			b.Rows = nil // dead-lettered; the offset still commits
			err = w.Write(t.Context(), b)
		}
		if err != nil {
			t.Fatalf("Write(%#v) = %v", rec, err)
		}
		next++
	})
}

// FuzzWriteValue writes one value built from fuzzed scalars into each column of the
// every-type table: the same contract as FuzzWriteDecodedRecord, reached directly.
func FuzzWriteValue(f *testing.F) {
	f.Add(int64(0), 0.0, "", []byte(nil))
	f.Add(int64(1)<<62, -1.5, "a\xffb", []byte{0xff})
	f.Add(int64(-62135596800000000), 3.25, "\x00", []byte("{}"))
	f.Add(int64(253402300800000000), 1e300, "Berlin", []byte{1, 2, 3})

	w := openDuck(f)
	every := mustParse(f, everyType)
	if err := w.EnsureTable(f.Context(), "EVERY", every); err != nil {
		f.Fatal(err)
	}
	epoch, next, err := w.Claim(f.Context(), "fuzz", 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, n int64, x float64, s string, b []byte) {
		values := []any{
			n, int32(n), int(n), x, float32(x), s, b,
			time.UnixMicro(n).UTC(), time.UnixMilli(n).UTC(), time.Duration(n),
			new(big.Rat).SetFrac64(n, 1000), new(big.Rat).SetFloat64(x),
			map[string]any{s: []any{n, x, s, b}}, []any{s}, nil, true,
		}
		rec := map[string]any{}
		for i, field := range every.(*avro.RecordSchema).Fields()[1:] {
			rec[field.Name()] = values[(i+int(uint64(n)%7))%len(values)]
		}
		batch := sink.Batch{Table: "EVERY", Topic: "fuzz", Start: next, End: next + 1, Epoch: epoch,
			Rows: []sink.Row{{Offset: next, EventID: s, Values: rec}}}
		err := w.Write(t.Context(), batch)
		if errors.Is(err, sink.ErrRowRejected) {
			batch.Rows = nil
			err = w.Write(t.Context(), batch)
		}
		if err != nil {
			t.Fatalf("Write(%#v) = %v", rec, err)
		}
		next++
	})
}
