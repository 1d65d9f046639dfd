package config

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	tracingapi "k8s.io/component-base/tracing/api/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	// The json log format (--logging-format=json, logging.format: json), as upstream's
	// kubelet registers it.
	_ "k8s.io/component-base/logs/json/register"
)

// Logging and tracing as upstream's kubelet does them: the logging section (and its
// --logging-format, -v, --vmodule, --log-* flags) is component-base's
// LoggingConfiguration, applied to klog with logsapi.ValidateAndApply; the tracing section
// is component-base's TracingConfiguration (an OTLP gRPC endpoint and a sampling rate).

// LoggingFeatureGate holds the logging feature gates (LoggingBetaOptions,
// LoggingAlphaOptions, ContextualLogging) at their defaults, set from featureGates where
// it names them; other gates are not its business.
func LoggingFeatureGate(k *kubeletv1beta1.KubeletConfiguration) (featuregate.FeatureGate, error) {
	fg := featuregate.NewFeatureGate()
	if err := logsapi.AddFeatureGates(fg); err != nil {
		return nil, err
	}
	known := fg.GetAll()
	set := map[string]bool{}
	for name, on := range k.FeatureGates {
		if _, ok := known[featuregate.Feature(name)]; ok {
			set[name] = on
		}
	}
	return fg, fg.SetFromMap(set)
}

// ApplyLogging validates the logging section and applies it to klog (format, verbosity,
// vmodule, flush frequency). It may run once per process.
func ApplyLogging(k *kubeletv1beta1.KubeletConfiguration) error {
	fg, err := LoggingFeatureGate(k)
	if err != nil {
		return err
	}
	return logsapi.ValidateAndApply(&k.Logging, fg)
}

// validateLoggingAndTracing returns the problems of the logging and tracing sections,
// each naming its field.
func validateLoggingAndTracing(k *kubeletv1beta1.KubeletConfiguration) field.ErrorList {
	fg, err := LoggingFeatureGate(k)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("featureGates"), k.FeatureGates, err.Error())}
	}
	errs := logsapi.Validate(&k.Logging, fg, field.NewPath("logging"))
	return append(errs, tracingapi.ValidateTracingConfiguration(k.Tracing, nil, field.NewPath("tracing"))...)
}
