package schema

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Registry is a caching schema registry client.
//
// Schemas are cached by id forever (ids are immutable), so Decode of a known id never
// touches the network. Unknown ids are fetched once even under concurrent Decodes. It is
// safe for concurrent use.
type Registry struct {
	cl *sr.Client

	// compatFor names each subject's compatibility mode (config.Registry.CompatibilityFor);
	// nil: BACKWARD for all. localCheck also checks it here (registry_compat.go).
	compatFor  func(subject string) string
	localCheck bool
	// configured holds the subjects whose mode this Registry has set on the registry.
	configured sync.Map // string -> string (mode)

	initOnce sync.Once
	byID     sync.Map // int -> *writerSchema

	mu      sync.Mutex
	pending map[int]*fetch

	// api decodes every writer schema. Decoding never uses defaults, so sharing hamba's
	// canonical-form cache between versions is safe here (unlike for encoding).
	api     avro.API
	readers sync.Pool
}

// writerSchema is a parsed schema of one id, ready for decoding.
type writerSchema struct {
	schema *avro.RecordSchema
	root   *converter
	// fast: decodeFast handles every node of the schema (fastdecode.go).
	fast bool
}

func newWriterSchema(rs *avro.RecordSchema, root *converter) *writerSchema {
	return &writerSchema{schema: rs, root: root, fast: fastDecodable(root)}
}

// fetch is one in-flight lookup of an unknown id.
type fetch struct {
	done chan struct{}
	ws   *writerSchema
	err  error
}

// NewRegistry wraps a franz-go registry client (build it with NewClient). Without
// options every subject is BACKWARD and only the registry checks compatibility.
func NewRegistry(cl *sr.Client, opts ...Option) *Registry {
	r := &Registry{cl: cl}
	for _, o := range opts {
		o(r)
	}
	r.init()
	return r
}

// init sets up the decoding state; a zero Registry (no client) is usable too.
func (r *Registry) init() {
	r.initOnce.Do(func() {
		r.pending = map[int]*fetch{}
		r.api = avro.Config{MaxSliceAllocSize: maxSliceAlloc}.Freeze()
		r.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(r.api)) }
	})
}

// Register parses avsc, sets subject's compatibility mode on the registry (once per
// Registry; see WithCompatibility), registers the schema and returns a Codec for it. The
// registry checks the mode; a schema it refuses is an error wrapping ErrIncompatible that
// names the subject, the mode and the registry's message. With WithLocalCheck the mode is
// checked here as well, for registries that store a mode but do not enforce it.
// Registering the same schema again is a no-op returning the same id.
//
// "The same" means the same schema including defaults and docs (hamba's JSON form), not
// just the same canonical form: defaults change what AppendEncode writes for missing
// fields, so a default-only change is registered as a new version.
func (r *Registry) Register(ctx context.Context, subject, avsc string) (*Codec, error) {
	r.init()
	rs, err := parseRecord(avsc)
	if err != nil {
		return nil, fmt.Errorf("schema: register %s: %w", subject, err)
	}
	if r.cl == nil {
		return nil, fmt.Errorf("schema: register %s: %w: no registry client", subject, ErrRegistryUnavailable)
	}
	mode, err := r.ensureCompatibility(ctx, subject)
	if err != nil {
		return nil, err
	}
	latest, found, err := r.latest(ctx, subject)
	if err != nil {
		return nil, err
	}
	id := 0
	if found {
		old, perr := parseRecord(latest.Schema.Schema)
		switch {
		case perr != nil || (latest.Type != sr.TypeAvro):
			return nil, fmt.Errorf("%w: subject %s: latest version %d is not an Avro record schema",
				ErrIncompatible, subject, latest.Version)
		case sameSchema(old, rs):
			id = latest.ID
		case r.localCheck:
			if err := r.checkLocally(ctx, subject, mode, rs, latest, old); err != nil {
				return nil, err
			}
		}
	}
	if id == 0 {
		id, err = r.cl.RegisterSchema(ctx, subject, sr.Schema{Schema: avsc, Type: sr.TypeAvro}, -1, -1)
		if err != nil {
			return nil, refusedErr(subject, mode, err)
		}
	}
	c, err := NewCodec(id, rs)
	if err != nil {
		return nil, err
	}
	r.byID.LoadOrStore(id, newWriterSchema(rs, c.st.root))
	return c, nil
}

// latest returns the newest version under subject, found=false if there is none.
func (r *Registry) latest(ctx context.Context, subject string) (sr.SubjectSchema, bool, error) {
	ss, err := r.cl.SchemaByVersion(ctx, subject, -1)
	if err == nil {
		return ss, true, nil
	}
	if isNotFound(err) {
		return sr.SubjectSchema{}, false, nil
	}
	return sr.SubjectSchema{}, false, registryErr("latest version of "+subject, err, nil)
}

// sameSchema reports whether two parsed schemas are identical including defaults.
func sameSchema(a, b *avro.RecordSchema) bool {
	ja, errA := a.MarshalJSON()
	jb, errB := b.MarshalJSON()
	if errA != nil || errB != nil {
		return a.String() == b.String()
	}
	return bytes.Equal(ja, jb)
}

// Decode decodes a Confluent-framed record written with any registered schema into
// Avro-native values (time.Time for timestamp-millis, nil for null unions, plain values for
// nullable unions). It returns the writer schema id. Errors wrap ErrMalformed,
// ErrUnknownSchema or ErrRegistryUnavailable.
//
// The id is returned whenever the header is readable, also with an error. Bytes left
// over after the record are malformed. Decode never panics.
func (r *Registry) Decode(ctx context.Context, b []byte) (map[string]any, int, error) {
	return r.DecodeInto(ctx, b, nil)
}

// DecodeInto is Decode that may reuse dst for the result: dst is cleared and filled
// when the writer schema takes the fast path (fastdecode.go), so a caller decoding
// record after record into one map saves its allocation. The result is dst or a new
// map (nil on error); dst's old contents are gone either way. dst nil is Decode.
func (r *Registry) DecodeInto(ctx context.Context, b []byte, dst map[string]any) (map[string]any, int, error) {
	ws, id, body, err := r.framed(ctx, b)
	if err != nil {
		return nil, id, err
	}
	m, err := r.decodeBodyInto(ws, body, dst)
	if err != nil {
		return nil, id, fmt.Errorf("%w: schema id %d (%s): %v", ErrMalformed, id, ws.schema.FullName(), err)
	}
	return m, id, nil
}

// decodeBody decodes one Avro body with its writer schema.
func (r *Registry) decodeBody(ws *writerSchema, body []byte) (map[string]any, error) {
	return r.decodeBodyInto(ws, body, nil)
}

// decodeBodyInto is decodeBody filling dst (cleared first; nil: a new map) on the fast
// path.
func (r *Registry) decodeBodyInto(ws *writerSchema, body []byte, dst map[string]any) (map[string]any, error) {
	m, err := r.read(body, func(rd *avro.Reader) (m map[string]any) {
		if ws.fast {
			if dst != nil {
				clear(dst)
			}
			return ws.root.rec.decodeFastInto(rd, dst)
		}
		rd.ReadVal(ws.schema, &m)
		return m
	})
	if err != nil {
		return nil, err
	}
	if !ws.fast && len(ws.root.rec.topNorm) > 0 {
		ws.root.rec.normTop(m)
	}
	return m, nil
}

// read decodes one record body with a pooled reader: fn reads the record, and read fails
// if fn left an error (io.EOF included: the body ended inside the record, which hamba's
// Unmarshal would silently accept), if bytes remain after the record, or if fn panicked.
func (r *Registry) read(body []byte, fn func(rd *avro.Reader) map[string]any) (m map[string]any, err error) {
	rd := r.readers.Get().(*avro.Reader)
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("decoder panic: %v", p)
		}
		rd.Error = nil
		rd.Reset(nil)
		r.readers.Put(rd)
	}()
	rd.Reset(body)
	m = fn(rd)
	if rd.Error != nil {
		return nil, rd.Error
	}
	if rd.Peek(); rd.Error == nil {
		return nil, errors.New("trailing bytes after the record")
	}
	return m, nil
}

// Schema returns the record schema registered under id, from the cache or the registry.
// Errors wrap ErrUnknownSchema, ErrMalformed (not an Avro record schema) or
// ErrRegistryUnavailable.
func (r *Registry) Schema(ctx context.Context, id int) (*avro.RecordSchema, error) {
	r.init()
	ws, err := r.writer(ctx, id)
	if err != nil {
		return nil, err
	}
	return ws.schema, nil
}

// writer returns the cached schema of id, fetching it once if unknown.
// framed splits a Confluent-framed record into its writer schema, schema id and Avro
// body: the first step of every decode.
func (r *Registry) framed(ctx context.Context, b []byte) (*writerSchema, int, []byte, error) {
	r.init()
	id, body, err := (&sr.ConfluentHeader{}).DecodeID(b)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%w: %d bytes: no Confluent header (magic 0 + 4-byte id)", ErrMalformed, len(b))
	}
	ws, err := r.writer(ctx, id)
	if err != nil {
		return nil, id, nil, err
	}
	return ws, id, body, nil
}

func (r *Registry) writer(ctx context.Context, id int) (*writerSchema, error) {
	if ws, ok := r.byID.Load(id); ok {
		return ws.(*writerSchema), nil
	}
	r.mu.Lock()
	if ws, ok := r.byID.Load(id); ok {
		r.mu.Unlock()
		return ws.(*writerSchema), nil
	}
	f, inFlight := r.pending[id]
	if !inFlight {
		f = &fetch{done: make(chan struct{})}
		r.pending[id] = f
	}
	r.mu.Unlock()

	if !inFlight {
		f.ws, f.err = r.fetch(ctx, id)
		r.mu.Lock()
		if f.err == nil {
			r.byID.Store(id, f.ws)
		}
		delete(r.pending, id)
		r.mu.Unlock()
		close(f.done)
		return f.ws, f.err
	}
	select {
	case <-f.done:
		return f.ws, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: schema id %d: %w", ErrRegistryUnavailable, id, ctx.Err())
	}
}

// fetch loads and compiles the schema of id from the registry.
func (r *Registry) fetch(ctx context.Context, id int) (*writerSchema, error) {
	if r.cl == nil {
		return nil, fmt.Errorf("%w: schema id %d: no registry client", ErrRegistryUnavailable, id)
	}
	s, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %d", ErrUnknownSchema, id)
		}
		return nil, registryErr(fmt.Sprintf("schema id %d", id), err, nil)
	}
	if s.Type != sr.TypeAvro {
		return nil, fmt.Errorf("%w: schema id %d is %s, not Avro", ErrMalformed, id, s.Type)
	}
	rs, err := parseRecord(s.Schema)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d: %w", ErrMalformed, id, err)
	}
	root, err := compileRecord(rs)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d: %w", ErrMalformed, id, err)
	}
	return newWriterSchema(rs, root), nil
}

// isNotFound reports whether the registry answered "no such subject, version or schema".
func isNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || sr.IsNotFoundError(re.ErrorCode))
}

// registryErr classifies a failed registry call. A 409 (the registry's own
// compatibility check) wraps conflict if set; a 422 (invalid schema) is returned as is,
// a permanent error; anything else (no connection, timeouts, 5xx, auth) wraps
// ErrRegistryUnavailable.
func registryErr(op string, err, conflict error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusConflict && conflict != nil:
			return fmt.Errorf("%w: %s: %w", conflict, op, err)
		case re.StatusCode == http.StatusUnprocessableEntity:
			return fmt.Errorf("schema: %s: invalid schema: %w", op, err)
		}
	}
	return fmt.Errorf("%w: %s: %w", ErrRegistryUnavailable, op, err)
}
