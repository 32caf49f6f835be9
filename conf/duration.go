package conf

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in TOML as a string in Go's
// time.ParseDuration syntax, such as "5s", "250ms" or "1m30s". A bare
// number is rejected rather than guessed at: "5" could mean seconds or
// milliseconds.
type Duration struct {
	time.Duration
}

// String formats d the way time.Duration does, e.g. "1m30s".
func (d Duration) String() string { return d.Duration.String() }

// MarshalText encodes d as its String form, so a Config encodes back to
// TOML that Parse accepts.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalTOML implements toml.Unmarshaler: it accepts only a string in
// time.ParseDuration syntax.
func (d *Duration) UnmarshalTOML(v any) error {
	parsed, problem := parseDuration(v)
	if problem != "" {
		return fmt.Errorf("conf: duration: %s", problem)
	}
	*d = parsed
	return nil
}

// parseDuration converts a decoded TOML value to a Duration. On failure it
// returns a message for the user that says what to write instead, meant to
// follow the key's name.
func parseDuration(v any) (Duration, string) {
	switch v := v.(type) {
	case string:
		parsed, err := time.ParseDuration(v)
		if err != nil {
			return Duration{}, fmt.Sprintf("%q is not a duration: write a number and a unit, like \"5s\" or \"250ms\"", v)
		}
		return Duration{parsed}, ""
	case int64:
		return Duration{}, fmt.Sprintf("must be a duration string with a unit, like \"5s\", not the bare number %d", v)
	case float64:
		return Duration{}, fmt.Sprintf("must be a duration string with a unit, like \"5s\", not the bare number %v", v)
	default:
		return Duration{}, fmt.Sprintf("must be a duration string with a unit, like \"5s\", not %s", describeValue(v))
	}
}
