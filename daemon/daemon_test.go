package daemon

import (
	"reflect"
	"testing"

	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/zkwatch"
)

func TestServiceOf(t *testing.T) {
	cases := []struct {
		name string
		in   zkwatch.ServiceState
		want dnsserver.Service
	}{
		{
			name: "unhealthy instances are not served",
			in: zkwatch.ServiceState{
				ServiceSpec: zkwatch.ServiceSpec{Name: "payments"},
				Instances: []zkwatch.Instance{
					{ID: "up", Format: "serverset", Address: "192.0.2.1", Port: 80, Weight: 100, Healthy: true},
					{ID: "stopping", Format: "serverset", Address: "192.0.2.2", Port: 80, Weight: 100},
				},
			},
			want: dnsserver.Service{Name: "payments", Instances: []dnsserver.Instance{
				{ID: "up", Address: "192.0.2.1", Port: 80, Weight: 100, TXT: []string{"format=serverset", "id=up"}},
			}},
		},
		{
			name: "metadata follows format and id, sorted by key",
			in: zkwatch.ServiceState{
				ServiceSpec: zkwatch.ServiceSpec{Name: "orders"},
				Instances: []zkwatch.Instance{{
					ID: "o1", Format: "curator", Address: "2001:db8::1", Port: 9000, Weight: 7, Healthy: true,
					Meta: map[string]string{"zone": "b", "az": "1", "instance_status": "UP"},
				}},
			},
			want: dnsserver.Service{Name: "orders", Instances: []dnsserver.Instance{{
				ID: "o1", Address: "2001:db8::1", Port: 9000, Weight: 7,
				TXT: []string{"format=curator", "id=o1", "az=1", "instance_status=UP", "zone=b"},
			}}},
		},
		{
			name: "no instances stays an existing, empty service",
			in:   zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "empty"}},
			want: dnsserver.Service{Name: "empty"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := serviceOf(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("serviceOf() = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
