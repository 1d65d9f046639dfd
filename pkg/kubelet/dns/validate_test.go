package dns

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The API server's messages for what it refuses in dnsPolicy and dnsConfig.
func TestValidatePodSpec(t *testing.T) {
	many := strings.Split(strings.Repeat("a.test ", 33), " ")[:33]
	for _, tc := range []struct {
		name string
		spec v1.PodSpec
		want string
	}{
		{"ClusterFirst", v1.PodSpec{DNSPolicy: v1.DNSClusterFirst}, ""},
		{"good dnsConfig", v1.PodSpec{DNSPolicy: v1.DNSNone, DNSConfig: &v1.PodDNSConfig{Nameservers: []string{"10.0.0.1", "fd00::1"},
			Searches: []string{"a.test", "b_c.test.", "."}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: str("2")}}}}, ""},
		{"unknown policy", v1.PodSpec{DNSPolicy: "Bogus"},
			`spec.dnsPolicy: Unsupported value: "Bogus": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"`},
		{"no policy", v1.PodSpec{}, "spec.dnsPolicy: Required value"},
		{"None without dnsConfig", v1.PodSpec{DNSPolicy: v1.DNSNone}, "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"},
		{"None without nameservers", v1.PodSpec{DNSPolicy: v1.DNSNone, DNSConfig: &v1.PodDNSConfig{}},
			"spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"},
		{"empty option", v1.PodSpec{DNSPolicy: v1.DNSDefault, DNSConfig: &v1.PodDNSConfig{Options: []v1.PodDNSConfigOption{{Name: "ndots"}, {Value: str("1")}}}},
			"spec.dnsConfig.options[1]: Required value: must not be empty"},
		{"four nameservers", v1.PodSpec{DNSPolicy: v1.DNSDefault, DNSConfig: &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"}}},
			`spec.dnsConfig.nameservers: Invalid value: ["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]: must not have more than 3 nameservers`},
		{"nameserver not an IP", v1.PodSpec{DNSPolicy: v1.DNSDefault, DNSConfig: &v1.PodDNSConfig{Nameservers: []string{"dns.test"}}},
			`spec.dnsConfig.nameservers[0]: Invalid value: "dns.test": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`},
		{"33 searches", v1.PodSpec{DNSPolicy: v1.DNSDefault, DNSConfig: &v1.PodDNSConfig{Searches: many}},
			"spec.dnsConfig.searches: Invalid value: [" + strings.TrimSuffix(strings.Repeat(`"a.test",`, 33), ",") + "]: must not have more than 32 search paths"},
		{"bad search", v1.PodSpec{DNSPolicy: v1.DNSDefault, DNSConfig: &v1.PodDNSConfig{Searches: []string{"A B"}}},
			`spec.dnsConfig.searches[0]: Invalid value: "A B": a lowercase RFC 1123 subdomain`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidatePodSpec(&tc.spec, field.NewPath("spec"))
			got := ""
			if agg := errs.ToAggregate(); agg != nil {
				got = agg.Error()
			}
			if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
