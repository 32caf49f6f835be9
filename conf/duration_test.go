package conf

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestDurationTOML decodes Duration with toml.Decode directly, as code
// outside Parse might.
func TestDurationTOML(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    time.Duration
		wantErr string // substring; empty means no error
	}{
		{name: "seconds", src: `d = "5s"`, want: 5 * time.Second},
		{name: "mixed units", src: `d = "1m30s"`, want: 90 * time.Second},
		{name: "milliseconds", src: `d = "250ms"`, want: 250 * time.Millisecond},
		{name: "negative", src: `d = "-2s"`, want: -2 * time.Second},
		{name: "integer", src: `d = 5`, wantErr: `must be a duration string with a unit, like "5s", not the bare number 5`},
		{name: "float", src: `d = 0.5`, wantErr: `like "5s", not the bare number 0.5`},
		{name: "no unit", src: `d = "5"`, wantErr: `"5" is not a duration: write a number and a unit`},
		{name: "array", src: `d = ["5s"]`, wantErr: `like "5s", not an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct{ D Duration }
			_, err := toml.Decode(tt.src, &v)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Decode error %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && v.D.Duration != tt.want:
				t.Errorf("decoded %v, want %v", v.D.Duration, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		name string
		d    Duration
		want string
	}{
		{"zero", Duration{}, "0s"},
		{"sub-second", Duration{500 * time.Millisecond}, "500ms"},
		{"minutes", Duration{90 * time.Second}, "1m30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := tt.d.MarshalText()
			if err != nil || string(text) != tt.want || tt.d.String() != tt.want {
				t.Errorf("MarshalText = %q, %v; String = %q; want %q", text, err, tt.d.String(), tt.want)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"milliseconds", 100 * time.Millisecond, "100ms"},
		{"minutes", 5 * time.Minute, "5m"},
		{"hours", 24 * time.Hour, "24h"},
		{"minutes and seconds", 90 * time.Second, "1m30s"},
		{"hours and minutes", 90 * time.Minute, "1h30m"},
		{"zero", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shortDuration(tt.d); got != tt.want {
				t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}
