package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// managedKind is one kind of object an XTrace owns and the operator keeps in
// line with its spec. The table managedKinds drives applying, deleting what
// is no longer wanted, the watches (Owns) and the cache's label selectors;
// a test checks it against the RBAC markers below.
type managedKind struct {
	// group and resource name the kind in RBAC rules.
	group, resource string
	// empty returns an empty object of the kind.
	empty func() client.Object
	// emptyList returns an empty list of the kind.
	emptyList func() client.ObjectList
	// build returns the wanted object, or nil when the spec turns it off.
	build func(*v1alpha1.XTrace, builders.Inputs) client.Object
	// conditionType is set for kinds whose API may be absent (the Prometheus
	// Operator's ServiceMonitor): they are applied only when the API is
	// installed, never watched, and a condition of this type says which.
	conditionType string
}

// managedVerbs are what the operator does to the kinds it manages: read and
// watch them, create, update (apply), delete (features turned off, immutable
// fields). The RBAC markers grant exactly these.
var managedVerbs = []string{"create", "delete", "get", "list", "update", "watch"}

// secretVerbs: Secrets are not in managedKinds. The operator reads the ones
// the pods consume (get), watches their metadata (list, watch) and creates the
// auth Secret once; it never rewrites or deletes one (garbage collection
// removes the generated Secret with its XTrace).
var secretVerbs = []string{"create", "get", "list", "watch"}

// +kubebuilder:rbac:groups="",resources=serviceaccounts;services,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create

// managedKinds in the order they are applied: the ServiceAccount before the
// pods that use it.
var managedKinds = []managedKind{
	{
		group: "", resource: "serviceaccounts",
		empty:     func() client.Object { return &corev1.ServiceAccount{} },
		emptyList: func() client.ObjectList { return &corev1.ServiceAccountList{} },
		build:     wanted(builders.ServiceAccount),
	},
	{
		group: "apps", resource: "deployments",
		empty:     func() client.Object { return &appsv1.Deployment{} },
		emptyList: func() client.ObjectList { return &appsv1.DeploymentList{} },
		build:     wanted(builders.Deployment),
	},
	{
		group: "", resource: "services",
		empty:     func() client.Object { return &corev1.Service{} },
		emptyList: func() client.ObjectList { return &corev1.ServiceList{} },
		build:     wanted(builders.Service),
	},
	{
		group: "batch", resource: "cronjobs",
		empty:     func() client.Object { return &batchv1.CronJob{} },
		emptyList: func() client.ObjectList { return &batchv1.CronJobList{} },
		build:     wanted(builders.RetentionCronJob),
	},
	{
		group: "policy", resource: "poddisruptionbudgets",
		empty:     func() client.Object { return &policyv1.PodDisruptionBudget{} },
		emptyList: func() client.ObjectList { return &policyv1.PodDisruptionBudgetList{} },
		build:     wanted(builders.PodDisruptionBudget),
	},
	{
		group: "autoscaling", resource: "horizontalpodautoscalers",
		empty:     func() client.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
		emptyList: func() client.ObjectList { return &autoscalingv2.HorizontalPodAutoscalerList{} },
		build:     wanted(builders.HorizontalPodAutoscaler),
	},
	{
		group: "networking.k8s.io", resource: "networkpolicies",
		empty:     func() client.Object { return &networkingv1.NetworkPolicy{} },
		emptyList: func() client.ObjectList { return &networkingv1.NetworkPolicyList{} },
		build:     wanted(builders.NetworkPolicy),
	},
	{
		group: builders.ServiceMonitorGVK.Group, resource: "servicemonitors",
		empty: func() client.Object {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(serviceMonitorGVK)
			return u
		},
		emptyList: func() client.ObjectList {
			u := &unstructured.UnstructuredList{}
			u.SetGroupVersionKind(serviceMonitorGVK.GroupVersion().WithKind(serviceMonitorGVK.Kind + "List"))
			return u
		},
		build:         wanted(builders.ServiceMonitor),
		conditionType: ConditionServiceMonitor,
	},
}

var serviceMonitorGVK = schema.GroupVersionKind{Group: builders.ServiceMonitorGVK.Group, Version: builders.ServiceMonitorGVK.Version, Kind: builders.ServiceMonitorGVK.Kind}

// wanted adapts a builder: its typed nil ("not wanted") becomes a nil client.Object.
func wanted[T interface {
	*E
	client.Object
}, E any](build func(*v1alpha1.XTrace, builders.Inputs) T) func(*v1alpha1.XTrace, builders.Inputs) client.Object {
	return func(x *v1alpha1.XTrace, in builders.Inputs) client.Object {
		if obj := build(x, in); obj != nil {
			return obj
		}
		return nil
	}
}

// watched reports whether the kind's API is always present, so it can be watched (Owns).
func (k managedKind) watched() bool { return k.conditionType == "" }
