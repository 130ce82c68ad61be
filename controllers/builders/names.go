// Package builders turns an XTrace into the objects it wants: pure functions,
// no client, tested without a cluster. A builder returns nil when its object
// is not wanted (the feature is disabled).
package builders

import (
	"fmt"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
)

// Label keys and values used on every managed object.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelVersion   = "app.kubernetes.io/version"

	AppName   = "xtrace"
	ManagedBy = "xtrace-operator"

	ComponentServer    = "server"
	ComponentRetention = "retention"

	// ConfigHashAnnotation on the pod template changes whenever something the
	// pods consume changes (settings, referenced Secrets' versions), rolling them.
	ConfigHashAnnotation = "observability.xtrace.dev/config-hash"
	// SpecHashAnnotation records the desired state the operator last applied,
	// so it writes only when that changes.
	SpecHashAnnotation = "observability.xtrace.dev/spec-hash"
)

// Auth Secret keys.
const (
	KeyBearerToken = "API_BEARER_TOKEN"
	KeyPublicKey   = "XTRACE_PUBLIC_KEY"
	KeySecretKey   = "XTRACE_SECRET_KEY"
	KeyURL         = "XTRACE_URL"
)

// Names of the managed objects, all derived from the XTrace's name.
type Names struct{ x *v1alpha1.XTrace }

// NamesOf returns the names for x.
func NamesOf(x *v1alpha1.XTrace) Names { return Names{x} }

func (n Names) Deployment() string     { return n.x.Name }
func (n Names) Service() string        { return n.x.Name }
func (n Names) PDB() string            { return n.x.Name }
func (n Names) HPA() string            { return n.x.Name }
func (n Names) NetworkPolicy() string  { return n.x.Name }
func (n Names) ServiceMonitor() string { return n.x.Name }
func (n Names) CronJob() string        { return n.x.Name + "-retention" }
func (n Names) GeneratedAuthSecret() string {
	return n.x.Name + "-auth"
}

// ServiceAccount is the pods' service account: the user's, or one the operator creates.
func (n Names) ServiceAccount() string {
	if n.x.Spec.ServiceAccountName != "" {
		return n.x.Spec.ServiceAccountName
	}
	return n.x.Name
}

// AuthSecret is the Secret with the API credentials.
func (n Names) AuthSecret() string {
	if n.x.Spec.Auth.ExistingSecret != "" {
		return n.x.Spec.Auth.ExistingSecret
	}
	return n.GeneratedAuthSecret()
}

// Endpoint is the in-cluster URL of the server.
func (n Names) Endpoint() string {
	return fmt.Sprintf("http://%s.%s.svc:%d", n.Service(), n.x.Namespace, n.x.Spec.Service.PortOrDefault())
}

// RemoteWriteURL is the in-cluster URL of the server's Prometheus remote-write receiver.
func (n Names) RemoteWriteURL() string { return n.Endpoint() + "/api/v1/write" }

// Labels are the standard labels of a managed object.
func Labels(x *v1alpha1.XTrace, component, version string) map[string]string {
	l := SelectorLabels(x, component)
	l[LabelManagedBy] = ManagedBy
	l[LabelPartOf] = AppName
	if version != "" {
		l[LabelVersion] = version
	}
	return l
}

// InstanceLabels are on every object the operator manages for x, whatever its component.
func InstanceLabels(x *v1alpha1.XTrace) map[string]string {
	return map[string]string{LabelName: AppName, LabelInstance: x.Name, LabelManagedBy: ManagedBy}
}

// SelectorLabels select the pods of one component of one XTrace (never change: selectors are immutable).
func SelectorLabels(x *v1alpha1.XTrace, component string) map[string]string {
	return map[string]string{LabelName: AppName, LabelInstance: x.Name, LabelComponent: component}
}
