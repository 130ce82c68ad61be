package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The default markers are literals; this pins the generated CRD (what the
// API server applies) to the constants the builders use. Every default of the
// CRD outside Kubernetes' own embedded types must be listed here, so a new
// marker without a constant fails too.
func TestCRDDefaultsAreTheConstants(t *testing.T) {
	want := map[string]any{
		"spec.replicas":                                   DefaultReplicas,
		"spec.defaultProjectId":                           DefaultProjectID,
		"spec.rateLimit":                                  map[string]any{},
		"spec.rateLimit.qps":                              DefaultRateLimitQPS,
		"spec.rateLimit.burst":                            DefaultRateLimitBurst,
		"spec.retention":                                  map[string]any{},
		"spec.retention.metricsDays":                      DefaultMetricsRetentionDays,
		"spec.retention.tracesDays":                       DefaultTracesRetentionDays,
		"spec.retention.schedule":                         DefaultRetentionSchedule,
		"spec.service":                                    map[string]any{},
		"spec.service.type":                               DefaultServiceType,
		"spec.service.port":                               DefaultServicePort,
		"spec.database.port":                              DefaultDatabasePort,
		"spec.database.maxConnections":                    DefaultDatabaseMaxConnections,
		"spec.podDisruptionBudget.maxUnavailable":         intstr.FromInt32(DefaultPDBMaxUnavailable),
		"spec.autoscaling.minReplicas":                    DefaultAutoscalingMinReplicas,
		"spec.autoscaling.maxReplicas":                    DefaultAutoscalingMaxReplicas,
		"spec.autoscaling.targetCPUUtilizationPercentage": DefaultAutoscalingCPUPercentage,
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "observability.xtrace.dev_xtraces.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	collectDefaults(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, "", got)
	var paths []string
	for p := range got {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		w, ok := want[p]
		if !ok {
			t.Errorf("%s: the CRD defaults it to %v, but no constant in defaults.go says so (add one and list it here)", p, got[p])
			continue
		}
		if asJSON(t, w) != asJSON(t, got[p]) {
			t.Errorf("%s: the marker says %s, the constant %s", p, asJSON(t, got[p]), asJSON(t, w))
		}
	}
	for p := range want {
		if _, ok := got[p]; !ok {
			t.Errorf("%s: a constant exists but the CRD has no default marker for it", p)
		}
	}
}

// collectDefaults records the default of every property under schema by
// dotted path. Array items are skipped: the only defaults there come from
// Kubernetes' own types (env var sources, image pull secrets).
func collectDefaults(schema map[string]any, path string, out map[string]any) {
	if d, ok := schema["default"]; ok {
		out[path] = d
	}
	props, _ := schema["properties"].(map[string]any)
	for name, sub := range props {
		if s, ok := sub.(map[string]any); ok {
			collectDefaults(s, strings.TrimPrefix(path+"."+name, "."), out)
		}
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAccessorsFallBackToTheDefaults(t *testing.T) {
	var s XTraceSpec
	if s.ReplicasOrDefault() != DefaultReplicas || s.DefaultProjectIDOrDefault() != DefaultProjectID ||
		s.RateLimit.QPSOrDefault() != DefaultRateLimitQPS || s.RateLimit.BurstOrDefault() != DefaultRateLimitBurst ||
		s.Retention.MetricsDaysOrDefault() != DefaultMetricsRetentionDays || s.Retention.TracesDaysOrDefault() != DefaultTracesRetentionDays ||
		s.Retention.ScheduleOrDefault() != DefaultRetentionSchedule || s.Service.TypeOrDefault() != DefaultServiceType ||
		s.Service.PortOrDefault() != DefaultServicePort || s.Database.PortOrDefault() != DefaultDatabasePort ||
		s.Database.MaxConnectionsOrDefault() != DefaultDatabaseMaxConnections ||
		s.PodDisruptionBudget.MaxUnavailableOrDefault() != intstr.FromInt32(DefaultPDBMaxUnavailable) {
		t.Fatal("an accessor of an unset field does not return its default")
	}
	var a AutoscalingSpec
	if a.MinReplicasOrDefault() != DefaultAutoscalingMinReplicas || a.MaxReplicasOrDefault() != DefaultAutoscalingMaxReplicas ||
		a.TargetCPUOrDefault() != DefaultAutoscalingCPUPercentage {
		t.Fatal("autoscaling accessors")
	}
	three := int32(3)
	s = XTraceSpec{Replicas: &three, RateLimit: RateLimitSpec{QPS: 2.5}, Service: ServiceSpec{Port: 9000}}
	if s.ReplicasOrDefault() != 3 || s.RateLimit.QPSOrDefault() != 2.5 || s.Service.PortOrDefault() != 9000 {
		t.Fatal("an accessor of a set field does not return the field")
	}
}
