package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Content codings accepted in the Content-Encoding of POST /api/v1/events/{topic}.
// "x-gzip" is read as gzip (RFC 9110 section 8.4.1.3).
const (
	codingGzip     = "gzip"
	codingZstd     = "zstd"
	codingIdentity = "identity"
)

// acceptedCodings is the Accept-Encoding of a 415 for an unsupported coding (RFC 7694).
const acceptedCodings = "gzip, zstd, identity"

// zstdWindowFloor is the zstd window a request may always use, even when the body limit
// is smaller: 8 MiB, the largest window zstd levels up to 19 choose. Above the floor the
// window may be as large as the body limit. The decoder allocates the window up front,
// so this bounds its memory however hostile the frame header.
const zstdWindowFloor = 8 << 20

// contentCoding parses a Content-Encoding header. It returns "" for no coding (absent,
// empty or identity only), else the single coding to undo. Unknown codings and more
// than one coding answer 415.
func contentCoding(header string) (string, *requestError) {
	coding := ""
	for part := range strings.SplitSeq(header, ",") {
		name := strings.ToLower(strings.TrimSpace(part))
		switch name {
		case "", codingIdentity:
			continue
		case "x-gzip":
			name = codingGzip
		case codingGzip, codingZstd:
		default:
			return "", newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType, reasonContentType,
				fmt.Sprintf("Content-Encoding %q is not supported; use one of %s", truncate(name), acceptedCodings))
		}
		if coding != "" {
			return "", newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType, reasonContentType,
				"Content-Encoding lists more than one coding; use exactly one of "+acceptedCodings)
		}
		coding = name
	}
	return coding, nil
}

// decompressors hands out reusable gzip and zstd decoders. Its zero value is ready.
type decompressors struct {
	gzip sync.Pool // *gzipDecoder
	zstd sync.Pool // *zstdDecoder
}

// gzipDecoder is a pooled gzip reader with the body reader it reads from.
type gzipDecoder struct {
	src bytes.Reader
	r   gzip.Reader
}

// zstdDecoder is a pooled zstd decoder and the window limit it was last set to.
type zstdDecoder struct {
	src    bytes.Reader
	d      *zstd.Decoder
	window uint64
}

// decompress undoes coding ("" for none) on body. The decompressed body may hold at
// most limit bytes: decoding stops after limit+1 bytes and answers 413, so a
// decompression bomb costs at most limit bytes of memory and the time to inflate
// them. Data that is not valid for its coding answers 400.
func (d *decompressors) decompress(coding string, body []byte, limit int64) ([]byte, *requestError) {
	var (
		out []byte
		err error
	)
	switch coding {
	case "":
		return body, nil
	case codingGzip:
		out, err = d.gunzip(body, limit)
	case codingZstd:
		out, err = d.unzstd(body, limit)
	default:
		return nil, newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType, reasonContentType,
			fmt.Sprintf("Content-Encoding %q is not supported; use one of %s", truncate(coding), acceptedCodings))
	}
	switch {
	case errors.Is(err, errDecompressedTooLarge), errors.Is(err, zstd.ErrWindowSizeExceeded),
		errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, newRequestError(fiber.StatusRequestEntityTooLarge, ProblemTooLarge, reasonTooLarge,
			fmt.Sprintf("the body is larger than %d bytes after %s decompression", limit, coding))
	case err != nil:
		return nil, errInvalidBody(fmt.Sprintf("the body is not valid %s data: %s", coding, truncate(err.Error())))
	}
	return out, nil
}

// errDecompressedTooLarge reports a decompressed body above the limit.
var errDecompressedTooLarge = errors.New("decompressed body above the limit")

func (d *decompressors) gunzip(body []byte, limit int64) ([]byte, error) {
	g, _ := d.gzip.Get().(*gzipDecoder)
	if g == nil {
		g = new(gzipDecoder)
	}
	defer func() {
		g.src.Reset(nil) // do not keep the request body alive
		d.gzip.Put(g)
	}()
	g.src.Reset(body)
	if err := g.r.Reset(&g.src); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no gzip header")
		}
		return nil, fmt.Errorf("header: %w", err)
	}
	return readLimited(&g.r, limit, len(body))
}

func (d *decompressors) unzstd(body []byte, limit int64) ([]byte, error) {
	window := uint64(max(limit, zstdWindowFloor))
	z, _ := d.zstd.Get().(*zstdDecoder)
	if z == nil {
		// Concurrency 1 decodes in the calling goroutine: no background goroutines,
		// so a pooled decoder that the pool drops needs no Close.
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(window), zstd.WithDecoderMaxWindow(window))
		if err != nil {
			return nil, fmt.Errorf("ingest: new zstd decoder: %w", err)
		}
		z = &zstdDecoder{d: dec, window: window}
	}
	defer func() {
		_ = z.d.Reset(nil)
		z.src.Reset(nil)
		d.zstd.Put(z)
	}()
	z.src.Reset(body)
	// A *bytes.Reader (unlike a *bytes.Buffer) makes the decoder stream, so the
	// output limit below applies while decoding rather than after.
	var err error
	if z.window != window {
		err = z.d.ResetWithOptions(&z.src, zstd.WithDecoderMaxMemory(window), zstd.WithDecoderMaxWindow(window))
		z.window = window
	} else {
		err = z.d.Reset(&z.src)
	}
	if err != nil {
		return nil, err
	}
	return readLimited(z.d, limit, len(body))
}

// readLimited reads r to the end, failing with errDecompressedTooLarge as soon as more
// than limit bytes came out. compressed (the input size) guesses the first buffer.
func readLimited(r io.Reader, limit int64, compressed int) ([]byte, error) {
	buf := make([]byte, 0, min(limit+1, int64(max(4*compressed, 4096))))
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			// Double, but never past limit+1: append's 1.25x growth for large slices
			// would allocate about five times the final size along the way.
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errDecompressedTooLarge
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
