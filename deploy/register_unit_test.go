package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const registerTemplate = "zkdns-register@.service"

// registerInstance writes the template as the instance for myapp.service
// into a new directory, next to a stand-in myapp.service for it to bind
// to, with edit applied, and returns the instance's path. ExecStart names
// this test binary, since systemd-analyze wants an executable there.
func registerInstance(t *testing.T, edit func(string) string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := readFile(t, filepath.Join(moduleRoot(t), "deploy", registerTemplate))
	unit = strings.ReplaceAll(unit, "ExecStart="+sourceBinary+" ", "ExecStart="+self+" ")
	dir := t.TempDir()
	stand := "[Unit]\nDescription=the service being registered\n[Service]\nExecStart=/bin/sleep infinity\n"
	if err := os.WriteFile(filepath.Join(dir, "myapp.service"), []byte(stand), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "zkdns-register@myapp.service")
	if err := os.WriteFile(path, []byte(edit(unit)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRegisterTemplateVerifies(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(string) string
		wantLine string // a problem must contain it; "" means no problems
	}{
		{
			name: "instance for myapp",
			edit: func(s string) string { return s },
		},
		{
			name: "unknown key is caught though the exit status is 0",
			edit: func(s string) string {
				return strings.Replace(s, "\n[Service]\n", "\n[Service]\nTimeoutStopSecs=60s\n", 1)
			},
			wantLine: "Unknown key",
		},
		{
			name: "binding to a service that does not exist",
			edit: func(s string) string {
				return strings.ReplaceAll(s, "%i.service", "%i-missing.service")
			},
			wantLine: "myapp-missing.service not found",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := registerInstance(t, tc.edit)
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

// TestRegisterTemplateSettings pins what makes the registrar stop first
// and drain, which systemd-analyze cannot know is required.
func TestRegisterTemplateSettings(t *testing.T) {
	units := unitValues(t, readFile(t, filepath.Join(moduleRoot(t), "deploy", registerTemplate)))
	tests := []struct {
		section, key string
		want         []string
	}{
		{"Unit", "BindsTo", []string{"%i.service"}},
		{"Unit", "PartOf", []string{"%i.service"}},
		{"Unit", "After", []string{"%i.service", "network-online.target"}},
		{"Service", "ExecStart", []string{"/usr/bin/zkdns register -config /etc/zkdns/register/%i.toml -pidfile /run/zkdns-register/%i.pid"}},
		{"Service", "RuntimeDirectory", []string{"zkdns-register"}},
		{"Service", "RuntimeDirectoryPreserve", []string{"yes"}},
		{"Service", "TimeoutStopSec", []string{"60s"}},
		{"Service", "KillSignal", nil}, // SIGTERM, the default, starts the drain
		{"Install", "WantedBy", []string{"%i.service"}},
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
