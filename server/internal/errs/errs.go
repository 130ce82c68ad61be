// Package errs holds the kinds of error that reach API clients. The domain,
// ingest and store layers return these (or wrap them with %w); the HTTP layer
// alone decides which status code and body each kind becomes.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error by what the client should do about it.
type Kind int

// The kinds. The zero value is not a kind: an error without one is internal.
const (
	// Invalid: the request is wrong; the client must change it (400).
	Invalid Kind = iota + 1
	// NotFound: the requested object does not exist (404).
	NotFound
	// Conflict: the request contradicts stored state (409).
	Conflict
	// Unavailable: the database cannot be reached or the server is shutting down; retry later (503).
	Unavailable
	// Overloaded: queues or budgets are full; retry after a short wait (429).
	Overloaded
	// TooLarge: the request is larger than a limit; split it (413).
	TooLarge
	// Timeout: the client was too slow sending the request (408).
	Timeout
	// Unprocessable: the request is well formed but cannot be carried out
	// within the server's limits, e.g. a query that would read too many
	// samples (422).
	Unprocessable
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Unavailable:
		return "unavailable"
	case Overloaded:
		return "overloaded"
	case TooLarge:
		return "too large"
	case Timeout:
		return "timeout"
	case Unprocessable:
		return "unprocessable"
	}
	return "internal"
}

// Error is an error of a kind with a message safe to show to the client.
type Error struct {
	Kind Kind
	// Field names what was wrong ("metrics[3].timestamp"); empty when the whole request is.
	Field string
	// Msg says what was wrong with it, or what happened.
	Msg string
	// RetryAfter, when set, is how long the client should wait before retrying.
	RetryAfter time.Duration
	// Detail is attached to the response (e.g. rate-limit state); nil for none.
	Detail any
	// Err is the cause, kept for logs; never shown to the client.
	Err error
}

// Message is what the client sees: "field: msg", or msg alone.
func (e *Error) Message() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message() + ": " + e.Err.Error()
	}
	return e.Message()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, errs.Unavailable) and friends work on wrapped errors.
func (e *Error) Is(target error) bool {
	k, ok := target.(kindSentinel)
	return ok && Kind(k) == e.Kind
}

// kindSentinel lets a Kind be used as an errors.Is target.
type kindSentinel Kind

func (k kindSentinel) Error() string { return Kind(k).String() }

// Sentinels for errors.Is and for wrapping with %w where no message is needed.
var (
	ErrNotFound    error = kindSentinel(NotFound)
	ErrUnavailable error = kindSentinel(Unavailable)
	ErrOverloaded  error = kindSentinel(Overloaded)
	ErrInvalid     error = kindSentinel(Invalid)
	ErrTooLarge    error = kindSentinel(TooLarge)
)

// InvalidField is a 400-kind error naming the field and what is wrong with it.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// NotFoundf says which object does not exist.
func NotFoundf(format string, args ...any) *Error {
	return &Error{Kind: NotFound, Msg: fmt.Sprintf(format, args...)}
}

// TooLargef says which limit a request exceeds.
func TooLargef(field, format string, args ...any) *Error {
	return &Error{Kind: TooLarge, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Busy says that a bounded resource is full; the client retries after retryAfter.
func Busy(msg string, retryAfter time.Duration) *Error {
	return &Error{Kind: Overloaded, Msg: msg, RetryAfter: retryAfter}
}

// Unavailablef wraps a cause (kept for logs) as a retryable unavailability.
func Unavailablef(cause error, format string, args ...any) *Error {
	return &Error{Kind: Unavailable, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// KindOf returns the kind of err, or 0 when it has none (an internal error).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var k kindSentinel
	if errors.As(err, &k) {
		return Kind(k)
	}
	return 0
}

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// WithField prefixes the field of an Invalid error (e.g. "metrics[3]" + ".value").
// Other errors are returned unchanged.
func WithField(err error, prefix string) error {
	e, ok := As(err)
	if !ok || e.Kind != Invalid {
		return err
	}
	out := *e
	switch {
	case e.Field == "":
		out.Field = prefix
	case e.Field[0] == '[' || e.Field[0] == '.':
		out.Field = prefix + e.Field
	default:
		out.Field = prefix + "." + e.Field
	}
	return &out
}
