package builders

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
)

// ServiceAccount of the server pods; nil when the user names their own.
func ServiceAccount(x *v1alpha1.XTrace, in Inputs) *corev1.ServiceAccount {
	if x.Spec.ServiceAccountName != "" {
		return nil
	}
	return &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: NamesOf(x).ServiceAccount(), Namespace: x.Namespace, Labels: Labels(x, ComponentServer, in.Version)},
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// AuthSecret is the generated credentials Secret (created once; its data is
// never rewritten). tokens come from crypto/rand in the reconciler. nil when
// the user brings an existing Secret.
func AuthSecret(x *v1alpha1.XTrace, in Inputs, bearer, publicKey, secretKey string) *corev1.Secret {
	if x.Spec.Auth.ExistingSecret != "" {
		return nil
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: NamesOf(x).GeneratedAuthSecret(), Namespace: x.Namespace, Labels: Labels(x, ComponentServer, "")},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{
			KeyBearerToken: bearer, KeyPublicKey: publicKey, KeySecretKey: secretKey, KeyURL: NamesOf(x).Endpoint(),
		},
	}
}

// Service in front of the server pods.
func Service(x *v1alpha1.XTrace, in Inputs) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: NamesOf(x).Service(), Namespace: x.Namespace,
			Labels: Labels(x, ComponentServer, in.Version), Annotations: x.Spec.Service.Annotations},
		Spec: corev1.ServiceSpec{
			Type:     x.Spec.Service.TypeOrDefault(),
			Selector: SelectorLabels(x, ComponentServer),
			Ports: []corev1.ServicePort{{Name: "http", Port: x.Spec.Service.PortOrDefault(), TargetPort: intstr.FromString("http"),
				Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("http")}},
		},
	}
}

// RetentionCronJob runs "xtrace retention" on the schedule.
func RetentionCronJob(x *v1alpha1.XTrace, in Inputs) *batchv1.CronJob {
	labels := Labels(x, ComponentRetention, in.Version)
	env := append(DatabaseEnv(x), RetentionJobEnv(x)...)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: NamesOf(x).CronJob(), Namespace: x.Namespace, Labels: labels},
		Spec: batchv1.CronJobSpec{
			Schedule:                   x.Spec.Retention.ScheduleOrDefault(),
			Suspend:                    ptr.To(x.Spec.Retention.Suspend),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    ptr.To[int64](600),
			SuccessfulJobsHistoryLimit: ptr.To[int32](3),
			FailedJobsHistoryLimit:     ptr.To[int32](3),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: batchv1.JobSpec{
					BackoffLimit:            ptr.To[int32](2),
					ActiveDeadlineSeconds:   ptr.To[int64](3600),
					TTLSecondsAfterFinished: ptr.To[int32](86400),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{
							RestartPolicy:                corev1.RestartPolicyOnFailure,
							ServiceAccountName:           NamesOf(x).ServiceAccount(),
							AutomountServiceAccountToken: ptr.To(false),
							ImagePullSecrets:             x.Spec.ImagePullSecrets,
							SecurityContext:              restrictedPodSecurity(),
							NodeSelector:                 x.Spec.NodeSelector,
							Tolerations:                  x.Spec.Tolerations,
							PriorityClassName:            x.Spec.PriorityClassName,
							Containers: []corev1.Container{{
								Name: "retention", Image: in.Image, ImagePullPolicy: x.Spec.ImagePullPolicy,
								Args: []string{"retention"}, Env: env, SecurityContext: restrictedContainerSecurity(),
							}},
						},
					},
				},
			},
		},
	}
}

// PodDisruptionBudget: when enabled, or by default when more than one replica runs.
func PodDisruptionBudget(x *v1alpha1.XTrace, in Inputs) *policyv1.PodDisruptionBudget {
	spec := x.Spec.PodDisruptionBudget
	enabled := x.Spec.ReplicasOrDefault() > 1 || (x.Spec.Autoscaling != nil && x.Spec.Autoscaling.Enabled && x.Spec.Autoscaling.MinReplicasOrDefault() > 1)
	if spec != nil && spec.Enabled != nil {
		enabled = *spec.Enabled
	}
	if !enabled {
		return nil
	}
	maxUnavailable := spec.MaxUnavailableOrDefault()
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: NamesOf(x).PDB(), Namespace: x.Namespace, Labels: Labels(x, ComponentServer, in.Version)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(x, ComponentServer)},
		},
	}
}

// HorizontalPodAutoscaler on CPU, when autoscaling is enabled.
func HorizontalPodAutoscaler(x *v1alpha1.XTrace, in Inputs) *autoscalingv2.HorizontalPodAutoscaler {
	a := x.Spec.Autoscaling
	if a == nil || !a.Enabled {
		return nil
	}
	minR := a.MinReplicasOrDefault()
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: NamesOf(x).HPA(), Namespace: x.Namespace, Labels: Labels(x, ComponentServer, in.Version)},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: NamesOf(x).Deployment()},
			MinReplicas:    ptr.To(minR),
			MaxReplicas:    max(a.MaxReplicasOrDefault(), minR),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(a.TargetCPUOrDefault())}},
			}},
		},
	}
}

// NetworkPolicy allowing ingress to the server port only from the listed peers
// (or the namespace's own pods), when enabled.
func NetworkPolicy(x *v1alpha1.XTrace, in Inputs) *networkingv1.NetworkPolicy {
	np := x.Spec.NetworkPolicy
	if np == nil || !np.Enabled {
		return nil
	}
	from := np.IngressFrom
	if len(from) == 0 {
		from = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}
	}
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: NamesOf(x).NetworkPolicy(), Namespace: x.Namespace, Labels: Labels(x, ComponentServer, in.Version)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(x, ComponentServer)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  from,
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(x.Spec.Service.PortOrDefault()))}},
			}},
		},
	}
}

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor kind.
var ServiceMonitorGVK = struct{ Group, Version, Kind string }{"monitoring.coreos.com", "v1", "ServiceMonitor"}

// ServiceMonitor scraping the server's /metrics, when enabled (unstructured:
// the operator does not depend on the Prometheus Operator's Go types).
func ServiceMonitor(x *v1alpha1.XTrace, in Inputs) *unstructured.Unstructured {
	sm := x.Spec.ServiceMonitor
	if sm == nil || !sm.Enabled {
		return nil
	}
	endpoint := map[string]any{"port": "http", "path": "/metrics"}
	if sm.Interval != "" {
		endpoint["interval"] = sm.Interval
	}
	labels := map[string]any{}
	for k, v := range Labels(x, ComponentServer, in.Version) {
		labels[k] = v
	}
	selector := map[string]any{}
	for k, v := range SelectorLabels(x, ComponentServer) {
		selector[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ServiceMonitorGVK.Group + "/" + ServiceMonitorGVK.Version,
		"kind":       ServiceMonitorGVK.Kind,
		"metadata":   map[string]any{"name": NamesOf(x).ServiceMonitor(), "namespace": x.Namespace, "labels": labels},
		"spec": map[string]any{
			"selector":  map[string]any{"matchLabels": selector},
			"endpoints": []any{endpoint},
		},
	}}
	return u
}
