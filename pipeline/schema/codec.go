package schema

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// maxSliceAlloc bounds the elements hamba allocates for one decoded array, so a corrupt
// block count cannot exhaust memory. Kafka records are far smaller.
const maxSliceAlloc = 1 << 20

// Codec encodes records of one registered record schema.
//
// Build it with NewCodec or Registry.Register: they compile the schema once. A Codec
// written as a literal works too, but compiles the schema on every call. Do not change
// Schema after first use. A Codec is safe for concurrent use.
type Codec struct {
	// ID is the registry id of the schema.
	ID int
	// Schema is the parsed record schema.
	Schema *avro.RecordSchema

	st *codecState
}

// codecState is what a Codec compiles from its schema.
type codecState struct {
	schema *avro.RecordSchema
	root   *converter
	// api is private to the Codec: hamba caches encoders by canonical form, which leaves
	// out defaults, so two versions of a schema must not share a cache.
	api     avro.API
	writers sync.Pool
	// fast: encodeFast can handle the schema (fastencode.go).
	fast bool
}

// NewCodec returns a Codec for schema registered under id. It fails if a field type or
// default cannot be handled.
func NewCodec(id int, schema *avro.RecordSchema) (*Codec, error) {
	c := &Codec{ID: id, Schema: schema}
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	c.st = st
	return c, nil
}

// state returns the compiled state, compiling it if the Codec was not built by NewCodec.
func (c *Codec) state() (*codecState, error) {
	if c == nil || c.Schema == nil {
		return nil, errors.New("schema: codec has no schema")
	}
	if c.st != nil && c.st.schema == c.Schema {
		return c.st, nil
	}
	return newCodecState(c.Schema)
}

// newCodecState compiles schema.
func newCodecState(schema *avro.RecordSchema) (*codecState, error) {
	root, err := compileRecord(schema)
	if err != nil {
		return nil, fmt.Errorf("schema: compile %s: %w", schema.FullName(), err)
	}
	st := &codecState{
		schema: schema,
		root:   root,
		api:    avro.Config{MaxSliceAllocSize: maxSliceAlloc}.Freeze(),
		fast:   fastEncodable(root),
	}
	st.writers.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(st.api)) }
	return st, nil
}

// AppendEncode appends the Confluent-framed Avro encoding of v (Avro-native values, as
// FromJSON returns) to dst.
//
// Fields missing from v take their schema default, so a record decoded with an older
// writer schema encodes with a newer one; keys that are not fields are ignored. Values of
// a promotable type (an int for a double, an int64 that fits an int, an RFC 3339 string
// for a timestamp) are converted as FromJSON would. On error dst is returned unchanged.
func (c *Codec) AppendEncode(dst []byte, v map[string]any) ([]byte, error) {
	st, err := c.state()
	if err != nil {
		return dst, err
	}
	if c.ID < 0 || c.ID > math.MaxUint32 {
		return dst, fmt.Errorf("schema: encode %s: schema id %d out of range", st.schema.FullName(), c.ID)
	}
	w := st.writers.Get().(*avro.Writer)
	defer st.writers.Put(w)

	if st.fast {
		w.Reset(nil)
		w.Error = nil
		if st.root.rec.encodeFast(w, v) && w.Error == nil {
			dst, _ = (&sr.ConfluentHeader{}).AppendEncode(dst, c.ID, nil)
			return append(dst, w.Buffer()...), nil
		}
	}
	err = st.encode(w, v, st.root.needPrep, false)
	if err != nil {
		// Slow path: values of a near-miss Go type. Only records that failed pay for it.
		// Its error, if any, names the field and what it must be.
		err = st.encode(w, v, true, true)
	}
	if err != nil {
		return dst, fmt.Errorf("schema: encode %s: %w", st.schema.FullName(), err)
	}
	dst, _ = (&sr.ConfluentHeader{}).AppendEncode(dst, c.ID, nil)
	return append(dst, w.Buffer()...), nil
}

// encode writes the Avro body of v into w, rewriting values for hamba first if prep.
func (st *codecState) encode(w *avro.Writer, v map[string]any, prep, coerce bool) (err error) {
	defer func() {
		// hamba's reflection paths are not hardened against every odd Go value.
		if p := recover(); p != nil {
			err = fmt.Errorf("encoder panic: %v", p)
		}
	}()
	w.Reset(nil)
	w.Error = nil
	var val any = v
	if prep {
		pv, err := st.root.rec.prepare(v, coerce)
		if err != nil {
			return err
		}
		val = pv
	}
	w.WriteVal(st.schema, val)
	return w.Error
}
