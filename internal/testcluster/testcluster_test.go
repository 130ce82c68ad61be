package testcluster

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

func TestAPIServerStarts(t *testing.T) {
	t.Parallel()
	api := StartAPIServer(t, Options{})
	cs := kubernetes.NewForConfigOrDie(api.Config)
	info, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != "v"+KubernetesVersion {
		t.Errorf("server version %s, want v%s", info.GitVersion, KubernetesVersion)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "smoke"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "smoke", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace not readable after create: %v", err)
	}
}

func TestSimulatedClusterRunsADeployment(t *testing.T) {
	t.Parallel()
	api := StartSimulated(t, Options{})
	cs := kubernetes.NewForConfigOrDie(api.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	labels := map[string]string{"app": "demo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "demo", Image: "example.invalid/demo:1"}}},
			},
		},
	}
	start := time.Now()
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "demo", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == 2 {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("deployment never became Available with 2 ready replicas: %v", err)
	}
	t.Logf("2-replica Deployment Available after %s", time.Since(start).Round(time.Millisecond))

	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName == FakeNodeName && p.Status.Phase == corev1.PodRunning {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("%d pods running on %s, want 2", running, FakeNodeName)
	}
}
