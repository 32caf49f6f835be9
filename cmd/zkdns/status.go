package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/zkdns/zkdns/daemon"
)

func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("zkdns status", flag.ContinueOnError)
	admin := fs.String("admin", "127.0.0.1:8601", "the daemon's admin `host:port` ([admin].listen)")
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zkdns status: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := daemon.FetchServices(ctx, *admin)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	printStatus(stdout, resp)
	return nil
}

// printStatus renders one line per instance, grouped by service; a
// service with no instances gets a line saying why, and znodes that are
// not served get a line saying how many and why.
func printStatus(w io.Writer, resp *daemon.ServicesResponse) {
	// Not plainly ready, the table may be what the daemon last knew:
	// say so before it rather than let it pass for the present.
	stale := resp.Readiness != "" && resp.Readiness != "ready"
	if stale {
		fmt.Fprintf(w, "zkdns %s\n", resp.Readiness)
	}
	if sw := resp.Switching; sw != nil {
		// Otherwise nothing shows that the ensemble the config names is
		// not the one answered from.
		fmt.Fprintf(w, "zkdns is moving to ZooKeeper %s since %s: %s; the table is the current session's until the new one has synced\n",
			sw.Describe(), sw.Since.Format(time.RFC3339), sw.Connection)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tADDRESS\tPORT\tWEIGHT\tHEALTHY\tREGISTERED")
	for _, s := range resp.Services {
		if len(s.Instances) == 0 {
			note := "(no instances)"
			switch {
			case s.AccessDenied:
				// Not "no instances": there may be many, zkdns cannot list them.
				note = "(ZooKeeper ACL denies zkdns reading path " + s.Path + ")"
			case !s.Exists && stale:
				// Added while ZooKeeper was out of reach, it is not
				// listed yet, whether its path exists or not.
				note = "(path " + s.Path + " not listed yet, or does not exist)"
			case !s.Exists:
				note = "(path " + s.Path + " does not exist yet)"
			}
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\n", s.Name, note)
		}
		for _, in := range s.Instances {
			registered := "-"
			if !in.Registered.IsZero() {
				registered = in.Registered.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.Name, shorten(in.ID), in.Address, in.Port, in.Weight,
				strconv.FormatBool(in.Healthy), registered)
		}
		if s.Invalid > 0 {
			fmt.Fprintf(tw, "%s\t(%d znodes skipped: payload does not decode)\t\t\t\t\t\n", s.Name, s.Invalid)
		}
		if s.Denied > 0 {
			fmt.Fprintf(tw, "%s\t(%d znodes skipped: ZooKeeper ACL denies zkdns reading them)\t\t\t\t\t\n", s.Name, s.Denied)
		}
	}
	tw.Flush()
}

// maxIDWidth keeps the table readable when znode names are long (Dubbo's
// are whole URL-encoded URLs); -json has them in full.
const maxIDWidth = 40

func shorten(id string) string {
	if len(id) <= maxIDWidth {
		return id
	}
	return id[:maxIDWidth-1] + "…"
}
