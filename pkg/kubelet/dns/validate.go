package dns

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidatePodSpec checks dnsPolicy and dnsConfig with the API server's rules and words
// (pkg/apis/core/validation), for pods that never went through it: static pods.
func ValidatePodSpec(spec *v1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch p := spec.DNSPolicy; p {
	case v1.DNSClusterFirstWithHostNet, v1.DNSClusterFirst, v1.DNSDefault, v1.DNSNone:
	case "":
		errs = append(errs, field.Required(path.Child("dnsPolicy"), ""))
	default:
		errs = append(errs, field.NotSupported(path.Child("dnsPolicy"), p, []string{
			string(v1.DNSClusterFirstWithHostNet), string(v1.DNSClusterFirst), string(v1.DNSDefault), string(v1.DNSNone)}))
	}
	cfg, fld := spec.DNSConfig, path.Child("dnsConfig")
	if spec.DNSPolicy == v1.DNSNone {
		if cfg == nil {
			return append(errs, field.Required(fld, fmt.Sprintf("must provide `dnsConfig` when `dnsPolicy` is %s", v1.DNSNone)))
		}
		if len(cfg.Nameservers) == 0 {
			return append(errs, field.Required(fld.Child("nameservers"), fmt.Sprintf("must provide at least one DNS nameserver when `dnsPolicy` is %s", v1.DNSNone)))
		}
	}
	if cfg == nil {
		return errs
	}
	if len(cfg.Nameservers) > MaxNameservers {
		errs = append(errs, field.Invalid(fld.Child("nameservers"), cfg.Nameservers, fmt.Sprintf("must not have more than %v nameservers", MaxNameservers)))
	}
	for i, ns := range cfg.Nameservers {
		errs = append(errs, validation.IsValidIPForLegacyField(fld.Child("nameservers").Index(i), ns, true, nil)...)
	}
	if len(cfg.Searches) > MaxSearchPaths {
		errs = append(errs, field.Invalid(fld.Child("searches"), cfg.Searches, fmt.Sprintf("must not have more than %v search paths", MaxSearchPaths)))
	}
	if len(strings.Join(cfg.Searches, " ")) > MaxSearchChars {
		errs = append(errs, field.Invalid(fld.Child("searches"), cfg.Searches, fmt.Sprintf("must not have more than %v characters (including spaces) in the search list", MaxSearchChars)))
	}
	for i, s := range cfg.Searches {
		if s == "." {
			continue
		}
		s = strings.TrimSuffix(s, ".")
		for _, msg := range validation.IsDNS1123SubdomainWithUnderscore(s) {
			errs = append(errs, field.Invalid(fld.Child("searches").Index(i), s, msg))
		}
	}
	for i, o := range cfg.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(fld.Child("options").Index(i), "must not be empty"))
		}
	}
	return errs
}
