package zkwatch

import (
	"testing"
	"time"
)

// dubboProviderSample is a provider znode name as Dubbo 2.7 writes it under
// /dubbo/com.example.DemoService/providers.
const dubboProviderSample = "dubbo%3A%2F%2F192.0.2.10%3A20880%2Fcom.example.DemoService%3Fanyhost%3Dtrue%26application%3Ddemo%26interface%3Dcom.example.DemoService%26methods%3DsayHello%26side%3Dprovider%26timestamp%3D1700000000000%26weight%3D50"

func TestDecodeDubbo(t *testing.T) {
	// Dubbo 2.7.3 with per-method parameters, as seen in a real registry.
	const dubbo273 = "dubbo%3A%2F%2F192.0.2.56%3A20880%2Fcom.example.api.IMenuService%3Fanyhost%3Dtrue%26application%3Ddubbo-provider%26application.version%3D1.0.0%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dcom.example.api.IMenuService%26methods%3DsayHi%26pid%3D250480%26register%3Dtrue%26release%3D2.7.3%26sayHi.retries%3D1%26sayHi.timeout%3D1000%26side%3Dprovider%26timestamp%3D1564144798682"
	// Dubbo 2.5.3 with a method list and a monitor URL encoded twice.
	const dubbo253 = "dubbo%3A%2F%2F192.0.2.99%3A20891%2Fcom.example.api.QSearchService%3Fanyhost%3Dtrue%26application%3Desh-provider%26dubbo%3D2.5.3%26interface%3Dcom.example.api.QSearchService%26logger%3Dslf4j%26methods%3DfindStockDoc%2CfindAll%26monitor%3Ddubbo%253A%252F%252F192.0.2.1%253A8096%252Fcom.alibaba.dubbo.registry.RegistryService%26pid%3D18460%26revision%3D0.0.2-SNAPSHOT%26side%3Dprovider%26threads%3D100%26timestamp%3D1572509354829"
	cases := []decodeCase{
		{
			name: "provider with weight and timestamp",
			node: Node{Name: dubboProviderSample},
			want: Instance{
				ID: dubboProviderSample, Format: "dubbo", Address: "192.0.2.10", Port: 20880,
				Weight: 50, Healthy: true, Registered: time.UnixMilli(1700000000000),
				Meta: map[string]string{
					"anyhost": "true", "application": "demo", "interface": "com.example.DemoService",
					"methods": "sayHello", "side": "provider", "timestamp": "1700000000000", "weight": "50",
				},
			},
		},
		{
			name: "dubbo 2.7.3 provider; curator's default data (an IP) ignored",
			node: Node{Name: dubbo273, Data: []byte("192.0.2.200")},
			want: Instance{
				ID: dubbo273, Format: "dubbo", Address: "192.0.2.56", Port: 20880,
				Weight: DefaultWeight, Healthy: true, Registered: time.UnixMilli(1564144798682),
				Meta: map[string]string{
					"anyhost": "true", "application": "dubbo-provider", "application.version": "1.0.0",
					"deprecated": "false", "dubbo": "2.0.2", "dynamic": "true", "generic": "false",
					"interface": "com.example.api.IMenuService", "methods": "sayHi", "pid": "250480",
					"register": "true", "release": "2.7.3", "sayHi.retries": "1", "sayHi.timeout": "1000",
					"side": "provider", "timestamp": "1564144798682",
				},
			},
		},
		{
			name: "dubbo 2.5.3 provider: encoded comma decoded, doubly encoded monitor kept encoded once",
			node: Node{Name: dubbo253},
			want: Instance{
				ID: dubbo253, Format: "dubbo", Address: "192.0.2.99", Port: 20891,
				Weight: DefaultWeight, Healthy: true, Registered: time.UnixMilli(1572509354829),
				Meta: map[string]string{
					"anyhost": "true", "application": "esh-provider", "dubbo": "2.5.3",
					"interface": "com.example.api.QSearchService", "logger": "slf4j",
					"methods": "findStockDoc,findAll",
					"monitor": "dubbo%3A%2F%2F192.0.2.1%3A8096%2Fcom.alibaba.dubbo.registry.RegistryService",
					"pid":     "18460", "revision": "0.0.2-SNAPSHOT", "side": "provider", "threads": "100",
					"timestamp": "1572509354829",
				},
			},
		},
		{
			name: "triple protocol, lowercase escapes, no parameters",
			node: Node{Name: "tri%3a%2f%2f198.51.100.20%3a50051%2fcom.example.Greeter"},
			want: Instance{
				ID: "tri%3a%2f%2f198.51.100.20%3a50051%2fcom.example.Greeter", Format: "dubbo",
				Address: "198.51.100.20", Port: 50051, Weight: DefaultWeight, Healthy: true,
				Registered: decodeTestCtime(),
			},
		},
		{
			name: "bracketed IPv6 host, credentials dropped",
			node: Node{Name: "rest%3A%2F%2Fuser%3Asecret%40%5B2001%3Adb8%3A%3A10%5D%3A8080%2Fapi%3Fside%3Dprovider"},
			want: Instance{
				ID: "rest%3A%2F%2Fuser%3Asecret%40%5B2001%3Adb8%3A%3A10%5D%3A8080%2Fapi%3Fside%3Dprovider", Format: "dubbo",
				Address: "2001:db8::10", Port: 8080, Weight: DefaultWeight, Healthy: true,
				Registered: decodeTestCtime(), Meta: map[string]string{"side": "provider"},
			},
		},
		{
			name: "unbracketed IPv6 host as Dubbo writes it",
			node: Node{Name: "dubbo%3A%2F%2F2001%3Adb8%3A%3A11%3A20880%2Fcom.example.S"},
			want: Instance{
				ID: "dubbo%3A%2F%2F2001%3Adb8%3A%3A11%3A20880%2Fcom.example.S", Format: "dubbo",
				Address: "2001:db8::11", Port: 20880, Weight: DefaultWeight, Healthy: true,
				Registered: decodeTestCtime(),
			},
		},
		{
			name: "enabled=false is unhealthy",
			node: Node{Name: "dubbo%3A%2F%2F192.0.2.12%3A20880%2Fcom.example.S%3Fenabled%3DFALSE"},
			want: Instance{
				ID: "dubbo%3A%2F%2F192.0.2.12%3A20880%2Fcom.example.S%3Fenabled%3DFALSE", Format: "dubbo",
				Address: "192.0.2.12", Port: 20880, Weight: DefaultWeight, Healthy: false,
				Registered: decodeTestCtime(), Meta: map[string]string{"enabled": "FALSE"},
			},
		},
		{
			name: "disabled present is unhealthy, even bare",
			node: Node{Name: "dubbo%3A%2F%2F192.0.2.13%3A20880%2Fcom.example.S%3Fdisabled%26side%3Dprovider"},
			want: Instance{
				ID: "dubbo%3A%2F%2F192.0.2.13%3A20880%2Fcom.example.S%3Fdisabled%26side%3Dprovider", Format: "dubbo",
				Address: "192.0.2.13", Port: 20880, Weight: DefaultWeight, Healthy: false,
				Registered: decodeTestCtime(), Meta: map[string]string{"disabled": "disabled", "side": "provider"},
			},
		},
		{
			name: "old default. prefix counts; semicolons separate; bad timestamp falls back to ctime",
			node: Node{Name: "dubbo%3A%2F%2F192.0.2.14%3A20880%2Fcom.example.S%3Fdefault.weight%3D5%3Btimestamp%3Dsoon"},
			want: Instance{
				ID: "dubbo%3A%2F%2F192.0.2.14%3A20880%2Fcom.example.S%3Fdefault.weight%3D5%3Btimestamp%3Dsoon", Format: "dubbo",
				Address: "192.0.2.14", Port: 20880, Weight: 5, Healthy: true,
				Registered: decodeTestCtime(), Meta: map[string]string{"default.weight": "5", "timestamp": "soon"},
			},
		},
		{
			name: "explicit weight wins over default.weight; plus is a space",
			node: Node{Name: "dubbo%3A%2F%2Fprovider-1.example%3A20880%2Fcom.example.S%3Fweight%3D300%26default.weight%3D5%26owner%3DTeam+A"},
			want: Instance{
				ID: "dubbo%3A%2F%2Fprovider-1.example%3A20880%2Fcom.example.S%3Fweight%3D300%26default.weight%3D5%26owner%3DTeam+A", Format: "dubbo",
				Address: "provider-1.example", Port: 20880, Weight: 300, Healthy: true,
				Registered: decodeTestCtime(), Meta: map[string]string{"weight": "300", "default.weight": "5", "owner": "Team A"},
			},
		},
		{
			name:    "consumer URL",
			node:    Node{Name: "consumer%3A%2F%2F192.0.2.15%2Fcom.example.S%3Fcategory%3Dconsumers%26side%3Dconsumer"},
			wantErr: "zkwatch: dubbo payload: a consumer:// URL is not a provider; point the service path at /dubbo/<interface>/providers",
		},
		{
			name:    "override URL",
			node:    Node{Name: "override%3A%2F%2F0.0.0.0%2Fcom.example.S%3Fcategory%3Dconfigurators%26disabled%3Dtrue"},
			wantErr: "zkwatch: dubbo payload: a override:// URL is not a provider",
		},
		{
			name:    "category other than providers",
			node:    Node{Name: "dubbo%3A%2F%2F192.0.2.16%3A20880%2Fcom.example.S%3Fcategory%3Drouters"},
			wantErr: "zkwatch: dubbo payload: URL has category=routers; only providers are instances",
		},
		{
			name:    "no port",
			node:    Node{Name: "dubbo%3A%2F%2F192.0.2.17%2Fcom.example.S%3Fside%3Dprovider"},
			wantErr: "zkwatch: dubbo payload: provider URL has no port",
		},
		{
			name:    "port out of range",
			node:    Node{Name: "dubbo%3A%2F%2F192.0.2.18%3A70000%2Fcom.example.S"},
			wantErr: "zkwatch: dubbo payload: port 70000 out of range (want 1-65535)",
		},
		{
			name:    "bad address",
			node:    Node{Name: "dubbo%3A%2F%2Fbad_host%3A20880%2Fcom.example.S"},
			wantErr: `zkwatch: dubbo payload: address "bad_host" is neither an IP address nor a valid hostname`,
		},
		{
			name:    "IPv6 zone",
			node:    Node{Name: "dubbo%3A%2F%2F%5Bfe80%3A%3A1%25eth0%5D%3A20880%2Fcom.example.S"},
			wantErr: `zkwatch: dubbo payload: address "fe80::1%eth0" has an IPv6 zone`,
		},
		{
			name:    "unclosed bracket",
			node:    Node{Name: "dubbo%3A%2F%2F%5B2001%3Adb8%3A%3A1%3A20880%2Fcom.example.S"},
			wantErr: "zkwatch: dubbo payload: provider URL host \"[2001:db8::1:20880\" lacks its closing bracket",
		},
		{
			name:    "broken escape",
			node:    Node{Name: "dubbo%3A%2F%2F192.0.2.19%3A20880%2Fcom.example.S%3Fa%3D%ZZ"},
			wantErr: "zkwatch: dubbo payload: znode name is not validly URL-encoded",
		},
		{
			name:    "escape decoding to non-UTF-8",
			node:    Node{Name: "dubbo%3A%2F%2F192.0.2.19%3A20880%2Fcom.example.S%3Fowner%3D%FF"},
			wantErr: "zkwatch: dubbo payload: znode name's provider URL is not UTF-8",
		},
		{
			name:     "endpoint set",
			node:     Node{Name: dubboProviderSample},
			endpoint: "http",
			wantErr:  `zkwatch: dubbo payload: endpoint "http" does not exist`,
		},
		{
			name:          "plain name",
			node:          Node{Name: "provider-1"},
			wantErr:       "zkwatch: dubbo payload: znode name is not a URL-encoded <scheme>://… URL",
			notThisFormat: true,
		},
		{
			name:          "scheme without the slashes",
			node:          Node{Name: "dubbo%3A192.0.2.10%3A20880"},
			wantErr:       "zkwatch: dubbo payload: znode name is not a URL-encoded",
			notThisFormat: true,
		},
		{
			name:          "scheme starting with a digit",
			node:          Node{Name: "9p%3A%2F%2F192.0.2.10%3A564"},
			wantErr:       "zkwatch: dubbo payload: znode name is not a URL-encoded",
			notThisFormat: true,
		},
		{
			name:          "name cut short after the scheme",
			node:          Node{Name: "dubbo%3A%2F"},
			wantErr:       "zkwatch: dubbo payload: znode name is not a URL-encoded",
			notThisFormat: true,
		},
	}
	runDecodeCases(t, "dubbo", cases)
}
