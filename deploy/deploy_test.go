// Package deploy_test checks what an operator gets from deploy/: the files
// `make install` lays out, and a systemd unit that systemd itself accepts.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	configPath = "/etc/zkdns/zkdns.toml"
	unitName   = "zkdns.service"
	// sourceBinary is the binary path the unit in the repository names;
	// `make install` rewrites it to $(PREFIX)/bin/zkdns.
	sourceBinary = "/usr/bin/zkdns"
	// makeTimeout covers `make install`, which builds bin/zkdns first.
	makeTimeout = 5 * time.Minute
)

// moduleRoot is where the Makefile lives; go test runs in deploy/.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	return root
}

// runMake runs make with the given targets and variables in the module
// root and fails the test if make fails.
func runMake(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), makeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = moduleRoot(t)
	// Install variables from the caller's environment would change the
	// defaults under test; command-line values win over the rest anyway.
	cmd.Env = withoutVars(os.Environ(), "DESTDIR", "PREFIX", "UNITDIR")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func withoutVars(env []string, names ...string) []string {
	var kept []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			kept = append(kept, kv)
		}
	}
	return kept
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// checkMode fails unless path is a regular file with exactly mode perm.
func checkMode(t *testing.T, path string, perm fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("installed file missing: %v", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want regular file %v", path, fi.Mode(), perm)
	}
}

func checkAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after uninstall (stat: %v)", path, err)
	}
}

// installedUnit is the unit as `make install` should write it for prefix:
// the repository's unit with only the two exec paths rewritten.
func installedUnit(t *testing.T, prefix string) string {
	t.Helper()
	src := readFile(t, filepath.Join(moduleRoot(t), "deploy", unitName))
	want := src
	for _, key := range []string{"ExecStartPre=", "ExecStart="} {
		want = strings.Replace(want, "\n"+key+sourceBinary+" ", "\n"+key+prefix+"/bin/zkdns ", 1)
	}
	if prefix != "/usr" && want == src {
		t.Fatalf("deploy/%s has no ExecStart=%s lines to rewrite", unitName, sourceBinary)
	}
	return want
}

func TestInstall(t *testing.T) {
	tests := []struct {
		name     string
		vars     []string // extra make variables
		prefix   string   // the PREFIX they amount to
		unitDir  string   // the UNITDIR they amount to
		wantExec string   // ExecStart= in the installed unit
	}{
		{
			name:     "defaults",
			prefix:   "/usr/local",
			unitDir:  "/lib/systemd/system",
			wantExec: "/usr/local/bin/zkdns serve -config /etc/zkdns/zkdns.toml",
		},
		{
			name:     "prefix /usr",
			vars:     []string{"PREFIX=/usr"},
			prefix:   "/usr",
			unitDir:  "/lib/systemd/system",
			wantExec: "/usr/bin/zkdns serve -config /etc/zkdns/zkdns.toml",
		},
		{
			name:     "prefix /opt/zkdns and unit dir /etc/systemd/system",
			vars:     []string{"PREFIX=/opt/zkdns", "UNITDIR=/etc/systemd/system"},
			prefix:   "/opt/zkdns",
			unitDir:  "/etc/systemd/system",
			wantExec: "/opt/zkdns/bin/zkdns serve -config /etc/zkdns/zkdns.toml",
		},
	}
	root := moduleRoot(t)
	example := readFile(t, filepath.Join(root, "deploy", "zkdns.example.toml"))
	// Not parallel: every `make install` rebuilds the shared bin/zkdns.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			destdir := t.TempDir()
			vars := append([]string{"DESTDIR=" + destdir}, tc.vars...)
			binary := filepath.Join(destdir, tc.prefix, "bin", "zkdns")
			unit := filepath.Join(destdir, tc.unitDir, unitName)
			config := filepath.Join(destdir, configPath)

			runMake(t, append([]string{"install"}, vars...)...)

			checkMode(t, binary, 0o755)
			checkMode(t, unit, 0o644)
			checkMode(t, config, 0o644)
			checkRuns(t, binary)
			gotUnit := readFile(t, unit)
			if want := installedUnit(t, tc.prefix); gotUnit != want {
				t.Errorf("installed unit differs from deploy/%s with exec paths under %s:\n%s", unitName, tc.prefix, gotUnit)
			}
			if got := unitValues(t, gotUnit)["Service"]["ExecStart"]; len(got) != 1 || got[0] != tc.wantExec {
				t.Errorf("ExecStart = %q, want %q", got, tc.wantExec)
			}
			if got := readFile(t, config); got != example {
				t.Errorf("installed config is not deploy/zkdns.example.toml:\n%s", got)
			}

			edited := example + "\n# edited by the operator\n"
			if err := os.WriteFile(config, []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
			runMake(t, append([]string{"install"}, vars...)...)
			if got := readFile(t, config); got != edited {
				t.Errorf("a second install overwrote the operator's config:\n%s", got)
			}
			checkMode(t, binary, 0o755)
			checkMode(t, unit, 0o644)

			runMake(t, append([]string{"uninstall"}, vars...)...)
			checkAbsent(t, binary)
			checkAbsent(t, unit)
			if got := readFile(t, config); got != edited {
				t.Errorf("uninstall changed the operator's config:\n%s", got)
			}
		})
	}
}

// checkRuns fails unless binary is a working zkdns.
func checkRuns(t *testing.T, binary string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "zkdns ") {
		t.Errorf("%s version: %q, %v", binary, out, err)
	}
}

// otherUnitLine matches a diagnostic whose subject is some unit (by name
// or by path, optionally with a line number).
var otherUnitLine = regexp.MustCompile(`^(?:\S*/)?([^\s/:]+\.(?:service|socket|target|mount|automount|swap|path|timer|slice|scope|device))(?::\d+)?:`)

// verifyUnit runs `systemd-analyze verify` on the unit file at path and
// returns what is wrong with it: a non-zero exit, and every stderr line
// about this unit. systemd only warns, with exit status 0, about unknown
// keys and unparsable values, so stderr has to be read.
func verifyUnit(t *testing.T, path string) []string {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v): run scripts/deps, which installs the Debian systemd package", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", path)
	cmd.Dir = t.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var problems []string
	if err := cmd.Run(); err != nil {
		problems = append(problems, "systemd-analyze verify: "+err.Error())
	}
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch m := otherUnitLine.FindStringSubmatch(line); {
		case line == "":
		case strings.Contains(line, path) || strings.Contains(line, filepath.Base(path)):
			problems = append(problems, line)
		case m != nil:
			// verify loads the units ours depends on (sysinit.target,
			// network-online.target and what they pull in) from this
			// host; their complaints are the host's, not the unit's.
			t.Logf("ignored, about host unit %s: %s", m[1], line)
		case strings.Contains(line, "machine-id"):
			// Outside a booted system /etc/machine-id may be missing or
			// empty; that says nothing about the unit.
			t.Logf("ignored, host has no machine id: %s", line)
		default:
			problems = append(problems, "unrecognised: "+line)
		}
	}
	return problems
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	// systemd-analyze verify fails a unit whose ExecStart= binary does not
	// exist on this host. Its --root= would look for /bin/kill and
	// sysinit.target inside the root as well, so instead: install once with
	// PREFIX=/usr into osRoot, then install the unit under test with its
	// PREFIX pointing at that first install's binary.
	osRoot := t.TempDir()
	runMake(t, "install", "DESTDIR="+osRoot, "PREFIX=/usr")
	staged := t.TempDir()
	prefix := filepath.Join(osRoot, "usr")
	runMake(t, "install", "DESTDIR="+staged, "PREFIX="+prefix)
	unit := readFile(t, filepath.Join(staged, "lib", "systemd", "system", unitName))

	tests := []struct {
		name     string
		edit     func(string) string
		wantLine string // a problem must contain it; "" means no problems
	}{
		{
			name: "installed unit",
			edit: func(s string) string { return s },
		},
		{
			name: "unknown key is caught though the exit status is 0",
			edit: func(s string) string {
				return strings.Replace(s, "\n[Service]\n", "\n[Service]\nWatchdogSecs=30s\n", 1)
			},
			wantLine: "Unknown key",
		},
		{
			name: "ExecStart binary missing",
			edit: func(s string) string {
				return strings.ReplaceAll(s, prefix+"/bin/zkdns ", filepath.Join(osRoot, "absent", "zkdns")+" ")
			},
			wantLine: "not executable",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.edit(unit)
			if tc.wantLine != "" && text == unit {
				t.Fatal("the edit did not change the unit")
			}
			path := filepath.Join(t.TempDir(), unitName)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			problems := verifyUnit(t, path)
			if tc.wantLine == "" {
				if len(problems) > 0 {
					t.Errorf("systemd-analyze verify %s:\n%s", path, strings.Join(problems, "\n"))
				}
				return
			}
			for _, p := range problems {
				if strings.Contains(p, tc.wantLine) {
					return
				}
			}
			t.Errorf("no problem mentioning %q; got %q", tc.wantLine, problems)
		})
	}
}

// unitValues parses a unit file into section → key → values, in order.
// It handles what deploy/zkdns.service uses: comments, sections, key=value.
func unitValues(t *testing.T, text string) map[string]map[string][]string {
	t.Helper()
	sections := map[string]map[string][]string{}
	section := ""
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			sections[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %d: not key=value in a section: %q", n+1, line)
			}
			sections[section][key] = append(sections[section][key], value)
		}
	}
	return sections
}

// TestUnitSettings pins the settings the daemon and the docs rely on, which
// systemd-analyze cannot know are required.
func TestUnitSettings(t *testing.T) {
	units := unitValues(t, readFile(t, filepath.Join(moduleRoot(t), "deploy", unitName)))
	tests := []struct {
		section, key string
		want         []string
	}{
		{"Unit", "Wants", []string{"network-online.target"}},
		{"Unit", "After", []string{"network-online.target"}},
		{"Service", "Type", []string{"notify"}},
		{"Service", "NotifyAccess", []string{"main"}},
		{"Service", "ExecStartPre", []string{"/usr/bin/zkdns check -config /etc/zkdns/zkdns.toml"}},
		{"Service", "ExecStart", []string{"/usr/bin/zkdns serve -config /etc/zkdns/zkdns.toml"}},
		{"Service", "ExecReload", []string{"/bin/kill -HUP $MAINPID"}},
		{"Service", "WatchdogSec", []string{"30s"}},
		{"Service", "Restart", []string{"on-failure"}},
		{"Service", "RestartSec", []string{"1s"}},
		{"Service", "TimeoutStopSec", []string{"30s"}},
		{"Service", "DynamicUser", []string{"yes"}},
		{"Service", "AmbientCapabilities", []string{"CAP_NET_BIND_SERVICE"}},
		{"Service", "CapabilityBoundingSet", []string{"CAP_NET_BIND_SERVICE"}},
		{"Service", "NoNewPrivileges", []string{"yes"}},
		{"Service", "ProtectSystem", []string{"strict"}},
		{"Service", "ProtectHome", []string{"yes"}},
		{"Service", "PrivateTmp", []string{"yes"}},
		{"Service", "PrivateDevices", []string{"yes"}},
		{"Service", "ProtectKernelTunables", []string{"yes"}},
		{"Service", "ProtectKernelModules", []string{"yes"}},
		{"Service", "ProtectKernelLogs", []string{"yes"}},
		{"Service", "ProtectControlGroups", []string{"yes"}},
		{"Service", "ProtectClock", []string{"yes"}},
		{"Service", "ProtectHostname", []string{"yes"}},
		{"Service", "RestrictAddressFamilies", []string{"AF_INET AF_INET6 AF_UNIX"}},
		{"Service", "RestrictNamespaces", []string{"yes"}},
		{"Service", "LockPersonality", []string{"yes"}},
		{"Service", "MemoryDenyWriteExecute", []string{"yes"}},
		{"Service", "RestrictRealtime", []string{"yes"}},
		{"Service", "RestrictSUIDSGID", []string{"yes"}},
		{"Service", "SystemCallArchitectures", []string{"native"}},
		{"Service", "SystemCallFilter", []string{"@system-service", "~@privileged @resources"}},
		{"Service", "UMask", []string{"0077"}},
		{"Install", "WantedBy", []string{"multi-user.target"}},
	}
	for _, tc := range tests {
		t.Run(tc.section+"/"+tc.key, func(t *testing.T) {
			got := units[tc.section][tc.key]
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("[%s] %s = %q, want %q", tc.section, tc.key, got, tc.want)
			}
		})
	}
}
