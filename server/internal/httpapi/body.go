package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"golang.org/x/sync/semaphore"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// bodyBudget bounds the memory that request bodies take while they are read,
// parsed and waiting for their commit: every ingest request reserves its
// (expected) size before reading and keeps it until it is answered. When the
// budget is spent, a request waits at most budgetWait, then gets 429 with
// Retry-After, so many concurrent large bodies cannot exhaust memory.
type bodyBudget struct {
	sem   *semaphore.Weighted
	total int64
	wait  time.Duration
}

func newBodyBudget(total int64, wait time.Duration) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(total), total: total, wait: wait}
}

// reserve takes n bytes of the budget (at most all of it); release returns them.
func (b *bodyBudget) reserve(ctx context.Context, n int64) (release func(), err error) {
	n = min(max(n, 1), b.total)
	ctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, errs.Busy("the server is busy reading other large requests; retry shortly", time.Second)
	}
	return func() { b.sem.Release(n) }, nil
}

// minReservation is what a request of unknown (or tiny) size reserves, so
// that parsing overhead is accounted for.
const minReservation = 64 << 10

// readBody reads an ingest request's body within the body budget: at most
// MaxRequestBodyBytes on the wire, and, for Content-Encoding gzip, at most as
// much again once inflated. The budget stays reserved until the request
// ends (parsing and the commit wait hold the decoded data). Read failures
// caused by the client become 400/408, not server errors.
func (a *API) readBody(r *http.Request) ([]byte, error) {
	return a.readEncodedBody(r, r.Header.Get("Content-Encoding"))
}

// readEncodedBody is readBody for a body in the given Content-Encoding
// (remote-write bodies are snappy-compressed whether or not the header says
// so). Snappy (block format) is inflated within the same limit as gzip.
func (a *API) readEncodedBody(r *http.Request, encoding string) ([]byte, error) {
	limit := a.cfg.MaxRequestBodyBytes
	encoding = strings.ToLower(strings.TrimSpace(encoding))
	expected := limit // unknown length or compressed: assume the worst
	if (encoding == "" || encoding == "identity" || encoding == "snappy") && r.ContentLength >= 0 {
		expected = r.ContentLength // snappy reserves its decoded size once its header says it
	}
	release, err := a.bodies.reserve(r.Context(), max(expected, minReservation))
	if err != nil {
		return nil, err
	}
	context.AfterFunc(r.Context(), release)

	var src io.Reader = r.Body
	switch encoding {
	case "", "identity":
	case "snappy":
		return a.readSnappy(r, limit)
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			var maxBytes *http.MaxBytesError
			var netErr net.Error
			if errors.As(err, &maxBytes) || errors.As(err, &netErr) {
				return nil, transportError(err)
			}
			return nil, errs.InvalidField("body", "Content-Encoding is gzip but the body is not gzip data")
		}
		defer zr.Close()
		src = zr
	default:
		return nil, errs.InvalidField("Content-Encoding", "%s is not supported (use gzip, snappy or none)", strconv.Quote(clip(encoding, 32)))
	}
	var buf bytes.Buffer
	if expected > 0 && expected <= limit {
		buf.Grow(int(expected) + 1)
	}
	if _, err = buf.ReadFrom(io.LimitReader(src, limit+1)); err != nil {
		if clientErr := transportError(err); clientErr != nil {
			return nil, clientErr
		}
		if encoding == "gzip" {
			return nil, &errs.Error{Kind: errs.Invalid, Field: "body", Msg: "corrupt gzip data", Err: err}
		}
		return nil, incompleteBody(err)
	}
	if int64(buf.Len()) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	return buf.Bytes(), nil
}

// readSnappy reads a snappy block (Prometheus remote-write's compression) of
// at most limit bytes that inflates to at most limit bytes. The block's
// header gives its decoded size, which is reserved in the body budget before
// it is inflated (the compressed size already is).
func (a *API) readSnappy(r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		if clientErr := transportError(err); clientErr != nil {
			return nil, clientErr
		}
		return nil, incompleteBody(err)
	}
	if int64(buf.Len()) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	n, err := snappy.DecodedLen(buf.Bytes())
	if err != nil {
		return nil, errs.InvalidField("body", "Content-Encoding is snappy but the body is not snappy data")
	}
	if int64(n) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	release, err := a.bodies.reserve(r.Context(), int64(n))
	if err != nil {
		return nil, err
	}
	context.AfterFunc(r.Context(), release)
	out, err := snappy.Decode(nil, buf.Bytes())
	if err != nil {
		return nil, errs.InvalidField("body", "corrupt snappy data")
	}
	return out, nil
}

// transportError classifies failures of the connection itself while the
// body is read: too large (413), too slow (408), cut off (400). Anything else
// (nil) is a problem with the data. Reading a request body never fails on the
// server's side, so none of these is a server error.
func transportError(err error) error {
	var maxBytes *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &maxBytes):
		return err
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return &errs.Error{Kind: errs.Timeout, Field: "body", Msg: "not received in time", Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, &netErr):
		return incompleteBody(err)
	}
	return nil
}

func incompleteBody(err error) error {
	return &errs.Error{Kind: errs.Invalid, Field: "body", Msg: "incomplete: the connection ended or the framing was invalid before the whole body arrived", Err: err}
}
