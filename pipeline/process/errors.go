package process

import (
	"errors"

	"github.com/sluicehq/sluice/pipeline/schema"
)

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// errMalformed are the decode errors a retry cannot fix.
var errMalformed = []error{schema.ErrMalformed, schema.ErrUnknownSchema}
