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
// time.ParseDuration syntax. Its error says what to write instead and is
// worded to follow the key's name, which is how Parse and Decode report
// it ("dns.ttl: must be a duration string …").
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		parsed, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration: write a number and a unit, like \"5s\" or \"250ms\"", v)
		}
		d.Duration = parsed
		return nil
	case int64:
		return fmt.Errorf("must be a duration string with a unit, like \"5s\", not the bare number %d", v)
	case float64:
		return fmt.Errorf("must be a duration string with a unit, like \"5s\", not the bare number %v", v)
	default:
		return fmt.Errorf("must be a duration string with a unit, like \"5s\", not %s", describeValue(v))
	}
}
