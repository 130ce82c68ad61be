package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// XTraceSpec is the desired state of an xtrace server deployment.
type XTraceSpec struct {
	// Image of the xtrace server. Defaults to the server image matching the operator's version.
	// +optional
	Image string `json:"image,omitempty"`
	// ImagePullPolicy of the server container.
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets for the server pods.
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Replicas of the server. Ignored while autoscaling is enabled.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Database is the PostgreSQL the server stores its data in: either a Secret
	// key holding a full connection URL (e.g. a CloudNativePG "<cluster>-app"
	// Secret, key "uri"), or host/port/dbName/user with the password in a Secret.
	Database DatabaseSpec `json:"database"`

	// Auth names a Secret with the API credentials. Absent: the operator generates "<name>-auth" once.
	// +optional
	Auth AuthSpec `json:"auth,omitempty"`

	// DefaultProjectID is the project ingested data belongs to.
	// +kubebuilder:default=default
	// +kubebuilder:validation:MinLength=1
	// +optional
	DefaultProjectID string `json:"defaultProjectId,omitempty"`

	// RateLimit of the query routes, per token and per server replica.
	// +kubebuilder:default={}
	// +optional
	RateLimit RateLimitSpec `json:"rateLimit,omitempty"`

	// Retention of metrics and traces, applied by a CronJob running "xtrace retention".
	// +kubebuilder:default={}
	// +optional
	Retention RetentionSpec `json:"retention,omitempty"`

	// Service exposing the server.
	// +kubebuilder:default={}
	// +optional
	Service ServiceSpec `json:"service,omitempty"`

	// Resources of the server container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// PodAnnotations are added to the server pods.
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	// PodLabels are added to the server pods.
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// ExtraEnv is appended to the server container's environment (e.g. XTRACE_LOG_LEVEL).
	// +optional
	ExtraEnv []corev1.EnvVar `json:"extraEnv,omitempty"`
	// ServiceAccountName of the server pods. Absent: the operator creates "<name>".
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// PodDisruptionBudget of the server pods.
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`
	// Autoscaling creates a HorizontalPodAutoscaler; the operator then leaves the replica count to it.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`
	// NetworkPolicy restricting ingress to the server.
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`
	// ServiceMonitor for the Prometheus Operator (created only when its CRD is installed).
	// +optional
	ServiceMonitor *ServiceMonitorSpec `json:"serviceMonitor,omitempty"`

	// Paused stops reconciling this resource; the managed objects stay as they are.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// DatabaseSpec says how the server reaches PostgreSQL. Set exactly one of urlSecretRef or host.
// Read replicas are optional: readUrlSecretRef with either form, or readHost with the host form.
// +kubebuilder:validation:XValidation:rule="has(self.urlSecretRef) != has(self.host)",message="set exactly one of database.urlSecretRef or database.host"
// +kubebuilder:validation:XValidation:rule="!has(self.host) || (has(self.dbName) && has(self.user) && has(self.passwordSecretRef))",message="database.host needs dbName, user and passwordSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.readHost) || has(self.host)",message="database.readHost needs the host form (database.host); with database.urlSecretRef use database.readUrlSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.readHost) || !has(self.readUrlSecretRef)",message="set at most one of database.readUrlSecretRef or database.readHost"
type DatabaseSpec struct {
	// URLSecretRef is a Secret key holding a full connection URL, e.g. a CloudNativePG "<cluster>-app" Secret, key "uri".
	// +optional
	URLSecretRef *SecretKeyRef `json:"urlSecretRef,omitempty"`
	// ReadURLSecretRef is a Secret key holding the connection URL of one or more
	// read replicas (comma-separated), e.g. a copy of a CloudNativePG
	// "<cluster>-app" Secret's "uri" with the host changed to "<cluster>-ro".
	// The server sends read-only queries there while the replicas keep up
	// (env DATABASE_READ_URL); writes always go to the primary.
	// +optional
	ReadURLSecretRef *SecretKeyRef `json:"readUrlSecretRef,omitempty"`
	// Host of the PostgreSQL server.
	// +optional
	Host string `json:"host,omitempty"`
	// ReadHost is the host of one or more read replicas (comma-separated), reached
	// with the same port, database, user, password and sslMode as host, e.g. a
	// CloudNativePG "<cluster>-ro" Service (env DATABASE_READ_HOST). Only with host.
	// +kubebuilder:validation:Pattern=`^[^\s,]+(,[^\s,]+)*$`
	// +optional
	ReadHost string `json:"readHost,omitempty"`
	// Port of the PostgreSQL server.
	// +kubebuilder:default=5432
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
	// DBName is the database name.
	// +optional
	DBName string `json:"dbName,omitempty"`
	// User to connect as.
	// +optional
	User string `json:"user,omitempty"`
	// PasswordSecretRef is a Secret key holding the user's password.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// SSLMode of the connection.
	// +kubebuilder:validation:Enum=disable;allow;prefer;require;verify-ca;verify-full
	// +optional
	SSLMode string `json:"sslMode,omitempty"`
	// MaxConnections is each replica's connection pool size.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=2
	// +optional
	MaxConnections int32 `json:"maxConnections,omitempty"`
}

// SecretKeyRef selects a key of a Secret in the XTrace's namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key in the Secret.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// AuthSpec selects the API credentials.
type AuthSpec struct {
	// ExistingSecret has the keys API_BEARER_TOKEN (one token or several, comma-separated) and
	// optionally XTRACE_PUBLIC_KEY and XTRACE_SECRET_KEY (Langfuse-style Basic auth).
	// +optional
	ExistingSecret string `json:"existingSecret,omitempty"`
}

// RateLimitSpec is a token bucket per API key.
// +kubebuilder:validation:XValidation:rule="!has(self.qps) || self.qps > 0.0",message="rateLimit.qps must be greater than 0"
type RateLimitSpec struct {
	// QPS is the sustained rate of queries per second.
	// +kubebuilder:default=20
	// +optional
	QPS float64 `json:"qps,omitempty"`
	// Burst is the bucket size.
	// +kubebuilder:default=40
	// +kubebuilder:validation:Minimum=1
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// RetentionSpec configures how long data is kept. The retention CronJob gets
// every field; the server pods get only metricsDays (see there), so changing
// the others does not restart them.
type RetentionSpec struct {
	// MetricsDays keeps metric points this many days. It is also a server
	// setting (METRICS_RETENTION_DAYS on the server pods): the server refuses
	// points older than this window, so changing it rolls the server pods.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +optional
	MetricsDays int32 `json:"metricsDays,omitempty"`
	// TracesDays keeps traces this many days (used only by the retention CronJob).
	// +kubebuilder:default=90
	// +kubebuilder:validation:Minimum=1
	// +optional
	TracesDays int32 `json:"tracesDays,omitempty"`
	// Schedule of the retention CronJob (cron syntax).
	// +kubebuilder:default="17 * * * *"
	// +kubebuilder:validation:MinLength=9
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Suspend the retention CronJob.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ServiceSpec configures the Service.
type ServiceSpec struct {
	// Type of the Service.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// Port of the Service and of the server.
	// +kubebuilder:default=8742
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
	// Annotations of the Service.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PodDisruptionBudgetSpec configures the PodDisruptionBudget.
type PodDisruptionBudgetSpec struct {
	// Enabled creates the budget. Absent: enabled when more than one replica runs.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// MaxUnavailable pods during voluntary disruptions.
	// +kubebuilder:default=1
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler on CPU.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must not exceed maxReplicas"
type AutoscalingSpec struct {
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// NetworkPolicySpec restricts which pods may reach the server.
type NetworkPolicySpec struct {
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// IngressFrom are the peers allowed to reach the server port. Empty: only pods of the same namespace.
	// +optional
	IngressFrom []networkingv1.NetworkPolicyPeer `json:"ingressFrom,omitempty"`
}

// ServiceMonitorSpec configures a Prometheus Operator ServiceMonitor.
type ServiceMonitorSpec struct {
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// Interval between scrapes, e.g. 30s.
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	// +optional
	Interval string `json:"interval,omitempty"`
}

// XTraceStatus is the observed state.
type XTraceStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (summary), Reconciled (spec applied), Available (pods serving).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Replicas of the Deployment.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas of the Deployment.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Selector of the server pods (for the scale subresource).
	// +optional
	Selector string `json:"selector,omitempty"`
	// Endpoint is the in-cluster URL of the server.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// RemoteWriteURL is where Prometheus, an OpenTelemetry collector or Grafana
	// Agent sends Prometheus remote-write; the Prometheus query API (for a
	// Grafana data source) is at Endpoint.
	// +optional
	RemoteWriteURL string `json:"remoteWriteURL,omitempty"`
	// AuthSecretName is the Secret holding the API credentials (and XTRACE_URL when generated).
	// +optional
	AuthSecretName string `json:"authSecretName,omitempty"`
	// Image the server runs.
	// +optional
	Image string `json:"image,omitempty"`
	// LastRetentionTime is when the retention CronJob last succeeded.
	// +optional
	LastRetentionTime *metav1.Time `json:"lastRetentionTime,omitempty"`
}

// XTrace runs an xtrace observability server (traces and GPU/KV-cache metrics on PostgreSQL).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=xt,categories=observability
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Remote-Write",type=string,JSONPath=`.status.remoteWriteURL`,priority=1
type XTrace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   XTraceSpec   `json:"spec,omitempty"`
	Status XTraceStatus `json:"status,omitempty"`
}

// XTraceList is a list of XTrace.
// +kubebuilder:object:root=true
type XTraceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []XTrace `json:"items"`
}

func init() {
	SchemeBuilder.Register(&XTrace{}, &XTraceList{})
}
