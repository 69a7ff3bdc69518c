package item

import (
	"errors"
	"fmt"
)

// Sentinels classify every error a caller can act on. Layers wrap them with
// %w; the HTTP layer maps them to a status in one place.
var (
	// ErrNotFound: the item does not exist.
	ErrNotFound = errors.New("brainy: item not found")
	// ErrConflict: a create found the item already there.
	ErrConflict = errors.New("brainy: item already exists")
	// ErrPreconditionFailed: If-Match / If-None-Match did not hold (a lost race).
	ErrPreconditionFailed = errors.New("brainy: precondition failed")
	// ErrInvalid: the input broke a rule; the error is an *InvalidError.
	ErrInvalid = errors.New("brainy: invalid input")
	// ErrUnavailable: the store cannot serve the request now; retry later.
	ErrUnavailable = errors.New("brainy: unavailable")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("brainy: closed")
	// ErrOutcomeUnknown: a write was sent but its answer was lost (a
	// timeout, a connection gone); it may or may not have been applied.
	// The system never re-sends such a write: the client may, with an
	// Idempotency-Key or a condition (If-Match, If-None-Match: *). It is
	// an ErrUnavailable too.
	ErrOutcomeUnknown = fmt.Errorf("%w: outcome unknown", ErrUnavailable)
	// ErrNotEverywhere: a global read's version had not reached every
	// reachable region when its time ran out (HTTP 504).
	ErrNotEverywhere = errors.New("brainy: the latest version has not reached every region")
)

// InvalidError describes bad input. Code is a stable, machine-readable
// snake_case word (the "code" of the HTTP error body); Message is for humans.
type InvalidError struct {
	Code    string
	Message string
}

func (e *InvalidError) Error() string { return "brainy: " + e.Message }

// Is makes errors.Is(err, ErrInvalid) true for every *InvalidError.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns an *InvalidError with a formatted message.
func Invalid(code, format string, args ...any) error {
	return &InvalidError{Code: code, Message: fmt.Sprintf(format, args...)}
}
