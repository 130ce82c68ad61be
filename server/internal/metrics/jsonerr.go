package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

func asTypeError(err error, target **json.UnmarshalTypeError) bool { return errors.As(err, target) }

// jsonProblem turns a decoder error into a message for the client.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty; expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s must be a %s", typ.Field, typ.Type.String())
		}
		return "expected a JSON object"
	default:
		return "malformed JSON"
	}
}
