package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults of the spec. The API server applies them through the
// +kubebuilder:default markers, whose values are literals; a test compares
// the generated CRD's defaults with these constants, and another (in the
// server's config package) compares these with the server's own defaults.
// The builders read the spec through the accessors below, so an object built
// from a spec the API server has not defaulted (a unit test, an old stored
// object) gets the same values.
const (
	DefaultReplicas                 int32   = 1
	DefaultProjectID                        = "default"
	DefaultRateLimitQPS             float64 = 20
	DefaultRateLimitBurst           int32   = 40
	DefaultMetricsRetentionDays     int32   = 30
	DefaultTracesRetentionDays      int32   = 90
	DefaultRetentionSchedule                = "17 * * * *"
	DefaultServiceType                      = corev1.ServiceTypeClusterIP
	DefaultServicePort              int32   = 8742
	DefaultDatabasePort             int32   = 5432
	DefaultDatabaseMaxConnections   int32   = 20
	DefaultPDBMaxUnavailable        int32   = 1
	DefaultAutoscalingMinReplicas   int32   = 1
	DefaultAutoscalingMaxReplicas   int32   = 3
	DefaultAutoscalingCPUPercentage int32   = 80
)

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ReplicasOrDefault is spec.replicas.
func (s *XTraceSpec) ReplicasOrDefault() int32 {
	if s.Replicas == nil {
		return DefaultReplicas
	}
	return *s.Replicas
}

// DefaultProjectIDOrDefault is spec.defaultProjectId.
func (s *XTraceSpec) DefaultProjectIDOrDefault() string {
	return orDefault(s.DefaultProjectID, DefaultProjectID)
}

// QPSOrDefault is spec.rateLimit.qps.
func (r RateLimitSpec) QPSOrDefault() float64 { return orDefault(r.QPS, DefaultRateLimitQPS) }

// BurstOrDefault is spec.rateLimit.burst.
func (r RateLimitSpec) BurstOrDefault() int32 { return orDefault(r.Burst, DefaultRateLimitBurst) }

// MetricsDaysOrDefault is spec.retention.metricsDays.
func (r RetentionSpec) MetricsDaysOrDefault() int32 {
	return orDefault(r.MetricsDays, DefaultMetricsRetentionDays)
}

// TracesDaysOrDefault is spec.retention.tracesDays.
func (r RetentionSpec) TracesDaysOrDefault() int32 {
	return orDefault(r.TracesDays, DefaultTracesRetentionDays)
}

// ScheduleOrDefault is spec.retention.schedule.
func (r RetentionSpec) ScheduleOrDefault() string {
	return orDefault(r.Schedule, DefaultRetentionSchedule)
}

// TypeOrDefault is spec.service.type.
func (s ServiceSpec) TypeOrDefault() corev1.ServiceType { return orDefault(s.Type, DefaultServiceType) }

// PortOrDefault is spec.service.port, which is also the server's port.
func (s ServiceSpec) PortOrDefault() int32 { return orDefault(s.Port, DefaultServicePort) }

// PortOrDefault is spec.database.port.
func (d DatabaseSpec) PortOrDefault() int32 { return orDefault(d.Port, DefaultDatabasePort) }

// MaxConnectionsOrDefault is spec.database.maxConnections.
func (d DatabaseSpec) MaxConnectionsOrDefault() int32 {
	return orDefault(d.MaxConnections, DefaultDatabaseMaxConnections)
}

// MaxUnavailableOrDefault is spec.podDisruptionBudget.maxUnavailable (p may be nil).
func (p *PodDisruptionBudgetSpec) MaxUnavailableOrDefault() intstr.IntOrString {
	if p == nil || p.MaxUnavailable == nil {
		return intstr.FromInt32(DefaultPDBMaxUnavailable)
	}
	return *p.MaxUnavailable
}

// MinReplicasOrDefault is spec.autoscaling.minReplicas.
func (a AutoscalingSpec) MinReplicasOrDefault() int32 {
	return orDefault(a.MinReplicas, DefaultAutoscalingMinReplicas)
}

// MaxReplicasOrDefault is spec.autoscaling.maxReplicas.
func (a AutoscalingSpec) MaxReplicasOrDefault() int32 {
	return orDefault(a.MaxReplicas, DefaultAutoscalingMaxReplicas)
}

// TargetCPUOrDefault is spec.autoscaling.targetCPUUtilizationPercentage.
func (a AutoscalingSpec) TargetCPUOrDefault() int32 {
	return orDefault(a.TargetCPUUtilizationPercentage, DefaultAutoscalingCPUPercentage)
}
