package registrar

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// parseWarmup turns Options.Warmup into the step that warms the service up
// before its first registration: "exec:COMMAND" runs COMMAND once with
// /bin/sh -c, "http://…" or "https://…" GETs the URL requests times in a
// row. Every request must answer 2xx and the command must exit 0, or the
// warm-up has failed. An empty spec yields nil: no warm-up. Its errors
// start with the spec, to follow the field's name in an *OptionError.
func parseWarmup(spec string, requests int, client *http.Client) (probe, error) {
	switch {
	case spec == "":
		return nil, nil
	case strings.HasPrefix(spec, "exec:"):
		command := strings.TrimSpace(strings.TrimPrefix(spec, "exec:"))
		if command == "" {
			return nil, fmt.Errorf("%q: exec: needs a command, as in exec:/usr/local/bin/warm-caches", spec)
		}
		return execProbe(command), nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		u, err := parseHTTPURL(spec)
		if err != nil {
			return nil, err
		}
		get := httpProbe(client, u)
		return func(ctx context.Context) error {
			for i := range requests {
				if err := get(ctx); err != nil {
					return fmt.Errorf("request %d of %d: %w", i+1, requests, err)
				}
			}
			return nil
		}, nil
	default:
		return nil, fmt.Errorf("%q: want exec:COMMAND, http://… or https://…", spec)
	}
}
