package builders

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
)

// Deployment is the xtrace server. With autoscaling enabled, Replicas is nil:
// the HPA owns the count and the reconciler keeps whatever is there.
func Deployment(x *v1alpha1.XTrace, in Inputs) *appsv1.Deployment {
	n := NamesOf(x)
	labels := Labels(x, ComponentServer, in.Version)
	podLabels := map[string]string{}
	for k, v := range x.Spec.PodLabels {
		podLabels[k] = v
	}
	for k, v := range labels { // ours win: the selector depends on them
		podLabels[k] = v
	}
	env := ServerEnv(x)
	podAnnotations := map[string]string{}
	for k, v := range x.Spec.PodAnnotations {
		podAnnotations[k] = v
	}
	podAnnotations[ConfigHashAnnotation] = Hash(struct {
		Env     []corev1.EnvVar
		Image   string
		Secrets string
	}{env, in.Image, secretVersionsKey(in.SecretVersions)})

	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: period, TimeoutSeconds: 3, FailureThreshold: failures,
		}
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: n.Deployment(), Namespace: x.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(x, ComponentServer)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:            n.ServiceAccount(),
					AutomountServiceAccountToken:  ptr.To(false),
					ImagePullSecrets:              x.Spec.ImagePullSecrets,
					SecurityContext:               restrictedPodSecurity(),
					NodeSelector:                  x.Spec.NodeSelector,
					Tolerations:                   x.Spec.Tolerations,
					Affinity:                      x.Spec.Affinity,
					TopologySpreadConstraints:     x.Spec.TopologySpreadConstraints,
					PriorityClassName:             x.Spec.PriorityClassName,
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					Containers: []corev1.Container{{
						Name:            "xtrace",
						Image:           in.Image,
						ImagePullPolicy: x.Spec.ImagePullPolicy,
						Args:            []string{"serve"},
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: x.Spec.Service.PortOrDefault(), Protocol: corev1.ProtocolTCP}},
						Env:             env,
						Resources:       x.Spec.Resources,
						ReadinessProbe:  probe("/readyz", 5, 3),
						LivenessProbe:   probe("/healthz", 10, 3),
						StartupProbe:    probe("/healthz", 2, 30),
						SecurityContext: restrictedContainerSecurity(),
					}},
				},
			},
		},
	}
	if x.Spec.Autoscaling == nil || !x.Spec.Autoscaling.Enabled {
		d.Spec.Replicas = ptr.To(x.Spec.ReplicasOrDefault())
	}
	return d
}
