package schema_test

import (
	"testing"
)

// BenchmarkFromJSONAppendEncode is the ingest hot path for one purchase: a JSON object
// (already decoded with UseNumber) to a Confluent-framed Avro record.
func BenchmarkFromJSONAppendEncode(b *testing.B) {
	codec := newCodec(b, builtin(b, "purchases.avsc"))
	in := decodeJSON(b, events["purchases.avsc"])
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		out, err := codec.FromJSON(in)
		if err != nil {
			b.Fatal(err)
		}
		if dst, err = codec.AppendEncode(dst[:0], out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromJSON is FromJSON alone for one purchase.
func BenchmarkFromJSON(b *testing.B) {
	codec := newCodec(b, builtin(b, "purchases.avsc"))
	in := decodeJSON(b, events["purchases.avsc"])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.FromJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendEncode is AppendEncode alone for one purchase.
func BenchmarkAppendEncode(b *testing.B) {
	codec := newCodec(b, builtin(b, "purchases.avsc"))
	out, err := codec.FromJSON(decodeJSON(b, events["purchases.avsc"]))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = codec.AppendEncode(dst[:0], out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is the processor hot path: a purchase record of a known schema id.
func BenchmarkDecode(b *testing.B) {
	reg, _ := newRegistry(b)
	codec := register(b, reg, "purchases-value", builtin(b, "purchases.avsc"))
	out, err := codec.FromJSON(decodeJSON(b, events["purchases.avsc"]))
	if err != nil {
		b.Fatal(err)
	}
	rec, err := codec.AppendEncode(nil, out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := reg.Decode(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}
