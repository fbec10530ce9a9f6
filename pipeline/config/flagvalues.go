package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// listValue is a flag.Value holding a comma-separated list. Set replaces the list, so an
// environment variable or a repeated flag never appends to the default.
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Set(s string) error {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	if len(out) == 0 {
		return errors.New("empty list")
	}
	*l = out
	return nil
}

// bytesValue is a flag.Value holding a byte count, written as a plain number or with a
// unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
type bytesValue int64

// byteUnits are tried in order, longest suffix first.
var byteUnits = [...]struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

func (b *bytesValue) String() string {
	if b == nil {
		return "0"
	}
	v := int64(*b)
	for _, u := range [...]struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v != 0 && v%u.mult == 0 {
			return strconv.FormatInt(v/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *bytesValue) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = bytesValue(n)
	return nil
}

// parseBytes parses "1048576", "10MiB" or "64 MB".
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size: want a number with an optional unit such as 10MiB")
	}
	if n < 0 {
		return 0, fmt.Errorf("byte size must not be negative")
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("byte size too large")
	}
	return n * mult, nil
}
