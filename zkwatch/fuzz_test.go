package zkwatch

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary znodes to every format. Decode must never
// panic; an error must carry the package prefix and come with the zero
// Instance; a success must be an instance DNS can serve, and "auto" must
// agree with the concrete format it picked.
func FuzzDecode(f *testing.F) {
	f.Add("auto", "", "585ddd0b", []byte(`{"name":"p","id":"585ddd0b","address":"192.0.2.106","port":8004,"sslPort":null,"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","metadata":{"instance_status":"UP","weight":"50"}},"registrationTimeUTC":1698197224917,"serviceType":"DYNAMIC","enabled":true}`))
	f.Add("curator", "ssl", "id", []byte(`{"address":"2001:db8::1","port":80,"sslPort":443,"serviceType":"DYNAMIC"}`))
	f.Add("serverset", "http", "member_0000000003", []byte(`{"status":"ALIVE","additionalEndpoints":{"http":{"host":"192.0.2.8","port":15509}},"serviceEndpoint":{"host":"192.0.2.9","port":15510},"shard":3}`))
	f.Add("nerve", "", "i-1_0000000001", []byte(`{"host":"192.0.2.30","port":3000,"name":"i-1","weight":2,"labels":{"az":"a"}}`))
	f.Add("auto", "", nerveNameSample, []byte(nil))
	f.Add("dubbo", "", dubboProviderSample, []byte("192.0.2.10"))
	f.Add("auto", "", "dubbo%3A%2F%2F%5B2001%3Adb8%3A%3A10%5D%3A8080%2Fapi%3Fweight%3D7%3Bdisabled", []byte(nil))
	f.Add("hostport", "", "i1", []byte("[2001:db8::40]:443\n"))
	f.Add("auto", "", "192.0.2.41:9000", []byte(nil))
	f.Add("auto", "", "x", []byte(`{"address":"192.0.2.1","port":70000,"serviceType":"DYNAMIC"}`))
	f.Add("bogus", "", "x", []byte("192.0.2.1:80"))

	formats := Formats()
	f.Fuzz(func(t *testing.T, format, endpoint, name string, data []byte) {
		n := Node{Name: name, Data: data, Ctime: decodeTestCtime()}
		inst, err := Decode(format, endpoint, n)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "zkwatch: ") {
				t.Errorf("error %q lacks the zkwatch: prefix", err)
			}
			if !reflect.DeepEqual(inst, Instance{}) {
				t.Errorf("Decode returned %+v alongside error %v", inst, err)
			}
			return
		}

		if inst.ID != name {
			t.Errorf("ID = %q, want the znode name %q", inst.ID, name)
		}
		if !slices.Contains(formats, inst.Format) {
			t.Errorf("Format = %q, not a concrete format", inst.Format)
		}
		if format != "auto" && format != "" && inst.Format != format {
			t.Errorf("Format = %q, asked for %q", inst.Format, format)
		}
		if inst.Port < 1 {
			t.Errorf("Port = %d, want 1-65535", inst.Port)
		}
		if canonical, err := checkAddress(inst.Address); err != nil || canonical != inst.Address {
			t.Errorf("Address %q is not a canonical valid address (checkAddress: %q, %v)", inst.Address, canonical, err)
		}
		if inst.Registered.IsZero() {
			t.Error("Registered is zero although the znode has a ctime")
		}
		if inst.Meta != nil && len(inst.Meta) == 0 {
			t.Error("Meta is empty but not nil")
		}

		if format == "auto" || format == "" {
			direct, err := Decode(inst.Format, endpoint, n)
			if err != nil {
				t.Fatalf("auto chose %s, but Decode(%q) fails: %v", inst.Format, inst.Format, err)
			}
			if !reflect.DeepEqual(inst, direct) {
				t.Errorf("auto and %s disagree\n auto: %+v\n%s: %+v", inst.Format, inst, inst.Format, direct)
			}
			return
		}
		// A concrete format that accepted the payload is the one auto picks
		// unless an earlier format in auto's order claims it.
		auto, err := Decode("auto", endpoint, n)
		if err != nil && !errors.Is(err, ErrNotThisFormat) {
			if idx := slices.Index(formats, inst.Format); idx == 0 {
				t.Errorf("%s accepts the payload but auto fails: %v", inst.Format, err)
			}
			return
		}
		if err == nil && slices.Index(formats, auto.Format) > slices.Index(formats, inst.Format) {
			t.Errorf("auto chose %s although the earlier %s accepts the payload", auto.Format, inst.Format)
		}
		if err != nil {
			t.Errorf("%s accepts the payload but auto finds no format: %v", inst.Format, err)
		}
	})
}
