package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

var ctx = context.Background()

func dbSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: map[string]string{"uri": "postgres://app:secret@pg-rw:5432/app"}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newXTrace(ns, name string) *v1alpha1.XTrace {
	return &v1alpha1.XTrace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.XTraceSpec{Database: v1alpha1.DatabaseSpec{URLSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "uri"}}},
	}
}

func get(t *testing.T, ns, name string, obj client.Object) error {
	t.Helper()
	return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// update changes an XTrace, retrying when the controller's status writes race with it.
func update(t *testing.T, x *v1alpha1.XTrace, mutate func(*v1alpha1.XTrace)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(x), x); err != nil {
			return err
		}
		mutate(x)
		return k8s.Update(ctx, x)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func updateDeployment(t *testing.T, dep *appsv1.Deployment, mutate func(*appsv1.Deployment)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return err
		}
		mutate(dep)
		return k8s.Update(ctx, dep)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func condition(x *v1alpha1.XTrace, typ string) *metav1.Condition {
	return meta.FindStatusCondition(x.Status.Conditions, typ)
}

func TestDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	x := newXTrace(ns, "defaults")
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	s := x.Spec
	if *s.Replicas != v1alpha1.DefaultReplicas || s.DefaultProjectID != v1alpha1.DefaultProjectID ||
		s.RateLimit.QPS != v1alpha1.DefaultRateLimitQPS || s.RateLimit.Burst != v1alpha1.DefaultRateLimitBurst ||
		s.Retention.MetricsDays != v1alpha1.DefaultMetricsRetentionDays || s.Retention.TracesDays != v1alpha1.DefaultTracesRetentionDays ||
		s.Retention.Schedule != v1alpha1.DefaultRetentionSchedule || s.Service.Type != v1alpha1.DefaultServiceType ||
		s.Service.Port != v1alpha1.DefaultServicePort || s.Database.MaxConnections != v1alpha1.DefaultDatabaseMaxConnections {
		t.Fatalf("defaults not applied by the API server: %+v", s)
	}
	cases := []struct {
		name   string
		mutate func(*v1alpha1.XTrace)
		want   string
	}{
		{"no database form", func(x *v1alpha1.XTrace) { x.Spec.Database = v1alpha1.DatabaseSpec{} }, "set exactly one of database.urlSecretRef or database.host"},
		{"both database forms", func(x *v1alpha1.XTrace) { x.Spec.Database.Host = "pg" }, "set exactly one of database.urlSecretRef or database.host"},
		{"host without user", func(x *v1alpha1.XTrace) {
			x.Spec.Database = v1alpha1.DatabaseSpec{Host: "pg", DBName: "x", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "p", Key: "k"}}
		}, "database.host needs dbName, user and passwordSecretRef"},
		{"bad sslmode", func(x *v1alpha1.XTrace) { x.Spec.Database.SSLMode = "always" }, "sslMode"},
		{"negative qps", func(x *v1alpha1.XTrace) { x.Spec.RateLimit.QPS = -1 }, "rateLimit.qps must be greater than 0"},
		{"zero burst", func(x *v1alpha1.XTrace) { x.Spec.RateLimit.Burst = -3 }, "burst"},
		{"autoscaling min > max", func(x *v1alpha1.XTrace) {
			x.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 5, MaxReplicas: 2}
		}, "autoscaling.minReplicas must not exceed maxReplicas"},
		{"retention days 0", func(x *v1alpha1.XTrace) { x.Spec.Retention.MetricsDays = -1 }, "metricsDays"},
		{"bad service type", func(x *v1alpha1.XTrace) { x.Spec.Service.Type = "ExternalName" }, "type"},
		{"readHost with a URL", func(x *v1alpha1.XTrace) { x.Spec.Database.ReadHost = "pg-ro" }, "database.readHost needs the host form"},
		{"both read forms", func(x *v1alpha1.XTrace) {
			x.Spec.Database = v1alpha1.DatabaseSpec{Host: "pg", DBName: "x", User: "u", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "p", Key: "k"},
				ReadHost: "pg-ro", ReadURLSecretRef: &v1alpha1.SecretKeyRef{Name: "r", Key: "uri"}}
		}, "set at most one of database.readUrlSecretRef or database.readHost"},
		{"readHost with spaces", func(x *v1alpha1.XTrace) {
			x.Spec.Database = v1alpha1.DatabaseSpec{Host: "pg", DBName: "x", User: "u", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "p", Key: "k"},
				ReadHost: "pg-ro, pg-ro2"}
		}, "readHost"},
	}
	for i, c := range cases {
		bad := newXTrace(ns, fmt.Sprintf("bad-%d", i))
		c.mutate(bad)
		err := k8s.Create(ctx, bad)
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want Invalid mentioning %q", c.name, err, c.want)
		}
	}
	// Read replicas: a URL Secret with either form, a host with the host form.
	for i, db := range []v1alpha1.DatabaseSpec{
		{URLSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "uri"}, ReadURLSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app-ro", Key: "uri"}},
		{Host: "pg-rw", DBName: "app", User: "app", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "password"},
			ReadURLSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app-ro", Key: "uri"}},
		{Host: "pg-rw", DBName: "app", User: "app", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "password"},
			ReadHost: "pg-ro,pg-ro-2.db.svc"},
	} {
		good := newXTrace(ns, fmt.Sprintf("read-%d", i))
		good.Spec.Database = db
		good.Spec.Paused = true // valid is all this asserts
		if err := k8s.Create(ctx, good); err != nil {
			t.Errorf("read replica form %d rejected: %v", i, err)
		}
	}
}

func TestCreatesEverythingOwnedAndReportsStatus(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dbSecret(t, ns, "pg-app")
	x := newXTrace(ns, "obs")
	x.Spec.Replicas = ptr.To[int32](2)
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	objects := map[string]client.Object{
		"obs": &appsv1.Deployment{}, "obs-svc": &corev1.Service{}, "obs-sa": &corev1.ServiceAccount{}, "obs-auth": &corev1.Secret{},
		"obs-retention": &batchv1.CronJob{}, "obs-pdb": &policyv1.PodDisruptionBudget{},
	}
	for key, obj := range objects {
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(key, "-svc"), "-sa"), "-pdb")
		eventually(t, "managed "+key, func() error {
			if err := get(t, ns, name, obj); err != nil {
				return err
			}
			ref := metav1.GetControllerOf(obj)
			if ref == nil || ref.Kind != "XTrace" || ref.Name != "obs" {
				return fmt.Errorf("%s not controlled by the XTrace: %v", key, obj.GetOwnerReferences())
			}
			if obj.GetLabels()[builders.LabelManagedBy] != builders.ManagedBy || obj.GetLabels()[builders.LabelInstance] != "obs" {
				return fmt.Errorf("%s labels %v", key, obj.GetLabels())
			}
			return nil
		})
	}
	secret := objects["obs-auth"].(*corev1.Secret)
	if len(secret.Data[builders.KeyBearerToken]) < 64 || string(secret.Data[builders.KeyURL]) != "http://obs."+ns+".svc:8742" {
		t.Fatalf("generated secret: %v", secret.Data)
	}
	dep := objects["obs"].(*appsv1.Deployment)
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Containers[0].Image != testImage {
		t.Fatalf("deployment: replicas %d image %s", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
	}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.Value != "" && strings.Contains(e.Value, string(secret.Data[builders.KeyBearerToken])) {
			t.Fatalf("literal secret in the Deployment env: %s", e.Name)
		}
	}
	// No pods run in envtest: Reconciled but not Available.
	eventually(t, "status", func() error {
		if err := get(t, ns, "obs", x); err != nil {
			return err
		}
		rc, av, rd := condition(x, ConditionReconciled), condition(x, ConditionAvailable), condition(x, ConditionReady)
		if rc == nil || rc.Status != metav1.ConditionTrue || av == nil || av.Reason != ReasonNoPodReady || rd == nil || rd.Status != metav1.ConditionFalse {
			return fmt.Errorf("conditions %+v", x.Status.Conditions)
		}
		if x.Status.ObservedGeneration != x.Generation || x.Status.Endpoint != "http://obs."+ns+".svc:8742" ||
			x.Status.RemoteWriteURL != "http://obs."+ns+".svc:8742/api/v1/write" || x.Status.AuthSecretName != "obs-auth" ||
			x.Status.Image != testImage || !strings.Contains(x.Status.Selector, "app.kubernetes.io/instance=obs") {
			return fmt.Errorf("status %+v", x.Status)
		}
		return nil
	})
	if strings.Contains(fmt.Sprint(x.Status), string(secret.Data[builders.KeyBearerToken])) {
		t.Fatal("a secret reached the status")
	}
	// The generated Secret is never rewritten.
	before := secret.ResourceVersion
	update(t, x, func(x *v1alpha1.XTrace) { x.Spec.RateLimit.QPS = 5 })
	eventually(t, "rate limit applied", func() error {
		if err := get(t, ns, "obs", dep); err != nil {
			return err
		}
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "RATE_LIMIT_QPS" && e.Value == "5" {
				return nil
			}
		}
		return errors.New("RATE_LIMIT_QPS not 5 yet")
	})
	if err := get(t, ns, "obs-auth", secret); err != nil || secret.ResourceVersion != before {
		t.Fatalf("auth Secret rewritten (%v)", err)
	}
}

func TestMissingSecretThenRecovery(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	x := newXTrace(ns, "waiting")
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SecretNotFound condition", func() error {
		if err := get(t, ns, "waiting", x); err != nil {
			return err
		}
		if c := condition(x, ConditionReconciled); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonSecretNotFound {
			return fmt.Errorf("conditions %+v", x.Status.Conditions)
		}
		return nil
	})
	if c := condition(x, ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonSecretNotFound {
		t.Fatalf("Ready does not say why: %+v", c)
	}
	eventually(t, "a Warning Event", func() error {
		var events corev1.EventList
		if err := k8s.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == ReasonSecretNotFound && e.Type == corev1.EventTypeWarning && e.InvolvedObject.Name == "waiting" {
				return nil
			}
		}
		return errors.New("no SecretNotFound event")
	})
	if err := get(t, ns, "waiting", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Deployment created before its Secret exists: %v", err)
	}
	dbSecret(t, ns, "pg-app") // the watch on referenced Secrets reconciles at once
	eventually(t, "recovery", func() error {
		if err := get(t, ns, "waiting", x); err != nil {
			return err
		}
		if c := condition(x, ConditionReconciled); c.Status != metav1.ConditionTrue {
			return fmt.Errorf("still %s", c.Reason)
		}
		return get(t, ns, "waiting", &appsv1.Deployment{})
	})
}

func podHash(t *testing.T, ns, name string) (string, string) {
	dep := &appsv1.Deployment{}
	if err := get(t, ns, name, dep); err != nil {
		return "", ""
	}
	return dep.Spec.Template.Annotations[builders.ConfigHashAnnotation], dep.ResourceVersion
}

func TestSecretRotationRollsPodsAndNoHotLoop(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	db := dbSecret(t, ns, "pg-app")
	x := newXTrace(ns, "rot")
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	var hash, rv string
	eventually(t, "deployment", func() error {
		if hash, rv = podHash(t, ns, "rot"); hash == "" {
			return errors.New("no deployment yet")
		}
		return nil
	})
	// Idle reconciles (a metadata-only change of the XTrace triggers one) write nothing.
	for i := 0; i < 3; i++ {
		update(t, x, func(x *v1alpha1.XTrace) {
			if x.Labels == nil {
				x.Labels = map[string]string{}
			}
			x.Labels["poke"] = fmt.Sprint(i)
		})
	}
	time.Sleep(time.Second) // let the reconciles run (nothing to poll for: the assertion is that nothing happens)
	if _, rv2 := podHash(t, ns, "rot"); rv2 != rv {
		t.Fatalf("idle reconciles rewrote the Deployment (resourceVersion %s → %s)", rv, rv2)
	}
	// Rotating the database password changes the pod-template hash.
	rotateAndWaitForRoll(t, db, "rot", func(s *corev1.Secret) {
		s.StringData = map[string]string{"uri": "postgres://app:rotated@pg-rw:5432/app"}
	})
	auth := &corev1.Secret{}
	if err := get(t, ns, "rot-auth", auth); err != nil {
		t.Fatal(err)
	}
	rotateAndWaitForRoll(t, auth, "rot", func(s *corev1.Secret) { s.Data[builders.KeyBearerToken] = []byte("new-token,old-token") })
}

// rotateAndWaitForRoll changes a Secret and waits for the config hash of the
// Deployment to change (which rolls its pods).
func rotateAndWaitForRoll(t *testing.T, s *corev1.Secret, deployment string, change func(*corev1.Secret)) {
	t.Helper()
	hash, _ := podHash(t, s.Namespace, deployment)
	change(s)
	if err := k8s.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "hash change after rotating Secret "+s.Name, func() error {
		if h, _ := podHash(t, s.Namespace, deployment); h == hash {
			return errors.New("hash unchanged")
		}
		return nil
	})
}

func TestOthersMetadataSurvives(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dbSecret(t, ns, "pg-app")
	x := newXTrace(ns, "meta")
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{}
	eventually(t, "deployment", func() error { return get(t, ns, "meta", dep) })
	updateDeployment(t, dep, func(dep *appsv1.Deployment) {
		dep.Annotations["team.example.com/owner"] = "ml-platform"
		dep.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-02-14T10:00:00Z"
	})
	// A spec change makes the operator update the Deployment.
	update(t, x, func(x *v1alpha1.XTrace) { x.Spec.Replicas = ptr.To[int32](3) })
	eventually(t, "replicas 3 with others' metadata kept", func() error {
		if err := get(t, ns, "meta", dep); err != nil {
			return err
		}
		if *dep.Spec.Replicas != 3 {
			return errors.New("not scaled yet")
		}
		if dep.Annotations["team.example.com/owner"] != "ml-platform" || dep.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
			return fmt.Errorf("others' annotations dropped: %v / %v", dep.Annotations, dep.Spec.Template.Annotations)
		}
		return nil
	})
}

func TestFeatureTogglesAndPause(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dbSecret(t, ns, "pg-app")
	x := newXTrace(ns, "feat")
	x.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 2, MaxReplicas: 4}
	x.Spec.NetworkPolicy = &v1alpha1.NetworkPolicySpec{Enabled: true}
	x.Spec.ServiceMonitor = &v1alpha1.ServiceMonitorSpec{Enabled: true}
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HPA, NetworkPolicy and PDB", func() error {
		for _, obj := range []client.Object{&autoscalingv2.HorizontalPodAutoscaler{}, &networkingv1.NetworkPolicy{}, &policyv1.PodDisruptionBudget{}} {
			if err := get(t, ns, "feat", obj); err != nil {
				return err
			}
		}
		return nil
	})
	// The ServiceMonitor CRD is not installed: a condition says so.
	eventually(t, "ServiceMonitor condition", func() error {
		if err := get(t, ns, "feat", x); err != nil {
			return err
		}
		if c := condition(x, ConditionServiceMonitor); c == nil || c.Reason != ReasonCRDNotInstalled {
			return fmt.Errorf("conditions %+v", x.Status.Conditions)
		}
		return nil
	})
	// The HPA owns the replica count: the operator does not fight it.
	dep := &appsv1.Deployment{}
	if err := get(t, ns, "feat", dep); err != nil {
		t.Fatal(err)
	}
	updateDeployment(t, dep, func(dep *appsv1.Deployment) { dep.Spec.Replicas = ptr.To[int32](4) }) // as the HPA would
	update(t, x, func(x *v1alpha1.XTrace) {
		x.Spec.RateLimit.Burst = 99 // forces a Deployment update
		x.Spec.NetworkPolicy.Enabled = false
		x.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{Enabled: ptr.To(false)}
	})
	eventually(t, "NetworkPolicy and PDB deleted, HPA's replicas kept", func() error {
		if err := get(t, ns, "feat", &networkingv1.NetworkPolicy{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("NetworkPolicy still there (%v)", err)
		}
		if err := get(t, ns, "feat", &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("PDB still there (%v)", err)
		}
		if err := get(t, ns, "feat", dep); err != nil {
			return err
		}
		burst := ""
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "RATE_LIMIT_BURST" {
				burst = e.Value
			}
		}
		if burst != "99" {
			return errors.New("not updated yet")
		}
		if *dep.Spec.Replicas != 4 {
			return fmt.Errorf("operator reset the HPA's replicas to %d", *dep.Spec.Replicas)
		}
		return nil
	})
	// Paused: spec changes are not applied, and the status says so.
	update(t, x, func(x *v1alpha1.XTrace) {
		x.Spec.Paused = true
		x.Spec.Autoscaling.Enabled = false
	})
	eventually(t, "Paused condition", func() error {
		if err := get(t, ns, "feat", x); err != nil {
			return err
		}
		if c := condition(x, ConditionReconciled); c.Reason != ReasonPaused {
			return fmt.Errorf("reason %s", c.Reason)
		}
		return nil
	})
	if err := get(t, ns, "feat", &autoscalingv2.HorizontalPodAutoscaler{}); err != nil {
		t.Fatalf("paused XTrace still changed objects: HPA %v", err)
	}
	update(t, x, func(x *v1alpha1.XTrace) { x.Spec.Paused = false })
	eventually(t, "HPA deleted after unpausing", func() error {
		if err := get(t, ns, "feat", &autoscalingv2.HorizontalPodAutoscaler{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("HPA still there (%v)", err)
		}
		return nil
	})
}

func TestRefusesToAdoptForeignObjects(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dbSecret(t, ns, "pg-app")
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := k8s.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	x := newXTrace(ns, "taken")
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ResourceConflict", func() error {
		if err := get(t, ns, "taken", x); err != nil {
			return err
		}
		if c := condition(x, ConditionReconciled); c == nil || c.Reason != ReasonConflict || !strings.Contains(c.Message, "Service taken") {
			return fmt.Errorf("conditions %+v", x.Status.Conditions)
		}
		return nil
	})
	if err := get(t, ns, "taken", foreign); err != nil || len(foreign.OwnerReferences) != 0 || foreign.Spec.Ports[0].Port != 80 {
		t.Fatalf("foreign Service touched: %+v", foreign)
	}
}

func envOf(dep *appsv1.Deployment, name string) *corev1.EnvVar {
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

func reconciledReason(t *testing.T, x *v1alpha1.XTrace) string {
	t.Helper()
	if err := get(t, x.Namespace, x.Name, x); err != nil {
		return err.Error()
	}
	if c := condition(x, ConditionReconciled); c != nil && c.ObservedGeneration == x.Generation {
		return c.Reason
	}
	return "not observed yet"
}

func TestReadReplicaSecret(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dbSecret(t, ns, "pg-app")
	x := newXTrace(ns, "reads")
	x.Spec.Database.ReadURLSecretRef = &v1alpha1.SecretKeyRef{Name: "pg-app-ro", Key: "uri"}
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SecretNotFound for the read Secret", func() error {
		if r := reconciledReason(t, x); r != ReasonSecretNotFound {
			return errors.New(r)
		}
		return nil
	})
	if c := condition(x, ConditionReconciled); !strings.Contains(c.Message, "pg-app-ro") {
		t.Fatalf("the message does not name the Secret: %s", c.Message)
	}
	ro := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pg-app-ro", Namespace: ns}, StringData: map[string]string{"url": "wrong key"}}
	if err := k8s.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SecretKeyNotFound for the read Secret", func() error {
		if r := reconciledReason(t, x); r != ReasonSecretKeyMissing {
			return errors.New(r)
		}
		return nil
	})
	ro.StringData = map[string]string{"uri": "postgres://app:secret@pg-ro:5432/app"}
	if err := k8s.Update(ctx, ro); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{}
	eventually(t, "DATABASE_READ_URL from the read Secret", func() error {
		if err := get(t, ns, "reads", dep); err != nil {
			return err
		}
		e := envOf(dep, "DATABASE_READ_URL")
		if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "pg-app-ro" || e.ValueFrom.SecretKeyRef.Key != "uri" || e.Value != "" {
			return fmt.Errorf("DATABASE_READ_URL %+v", e)
		}
		return nil
	})
	rotateAndWaitForRoll(t, ro, "reads", func(s *corev1.Secret) {
		s.StringData = map[string]string{"uri": "postgres://app:rotated@pg-ro:5432/app"}
	})
}

// TestDeletesOnlyWhatItControls: turning a feature off deletes the owned
// object found by label, not a look-alike someone else made with the same
// labels; an owned object whose labels were removed is found anyway and
// gets them back on the next update.
func TestDeletesOnlyWhatItControls(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	dbSecret(t, ns, "pg-app")
	x := newXTrace(ns, "own")
	x.Spec.NetworkPolicy = &v1alpha1.NetworkPolicySpec{Enabled: true}
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NetworkPolicy", func() error { return get(t, ns, "own", &networkingv1.NetworkPolicy{}) })
	lookalike := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "own-copy", Namespace: ns, Labels: builders.InstanceLabels(x)}}
	if err := k8s.Create(ctx, lookalike); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{}
	if err := get(t, ns, "own", svc); err != nil {
		t.Fatal(err)
	}
	svc.Labels = map[string]string{"someone": "else"}
	if err := k8s.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	update(t, x, func(x *v1alpha1.XTrace) {
		x.Spec.NetworkPolicy.Enabled = false
		x.Spec.Service.Annotations = map[string]string{"changed": "yes"} // forces a Service update
	})
	eventually(t, "owned NetworkPolicy deleted, Service relabelled", func() error {
		if err := get(t, ns, "own", &networkingv1.NetworkPolicy{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("NetworkPolicy still there (%v)", err)
		}
		if err := get(t, ns, "own", svc); err != nil {
			return err
		}
		if svc.Annotations["changed"] != "yes" || svc.Labels[builders.LabelManagedBy] != builders.ManagedBy || svc.Labels["someone"] != "else" {
			return fmt.Errorf("Service not updated yet: labels %v annotations %v", svc.Labels, svc.Annotations)
		}
		return nil
	})
	// The status is written after the objects: wait for this generation's.
	eventually(t, "Reconciled reason Applied", func() error {
		if r := reconciledReason(t, x); r != ReasonApplied {
			return fmt.Errorf("Reconciled reason %s", r)
		}
		return nil
	})
	if err := get(t, ns, "own-copy", lookalike); err != nil {
		t.Fatalf("a NetworkPolicy the XTrace does not control was deleted: %v", err)
	}
}

// TestStatusPatchIgnoresStaleCopies: the status is written as a merge patch
// from the object as fetched, so a write to the XTrace in between (which an
// Update would answer with a conflict, and a retry) does not stop it.
func TestStatusPatchIgnoresStaleCopies(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	x := newXTrace(ns, "stale")
	x.Spec.Paused = true // the controller then settles at once and leaves the status alone
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Paused", func() error {
		if r := reconciledReason(t, x); r != ReasonPaused {
			return errors.New(r)
		}
		return nil
	})
	fetched := x.DeepCopy()
	update(t, x, func(x *v1alpha1.XTrace) { x.Labels = map[string]string{"written": "meanwhile"} })
	if x.ResourceVersion == fetched.ResourceVersion {
		t.Fatal("the XTrace did not change")
	}
	changed := fetched.DeepCopy()
	meta.SetStatusCondition(&changed.Status.Conditions, metav1.Condition{Type: "Probe", Status: metav1.ConditionTrue, Reason: "Test", Message: "m"})
	r := &XTraceReconciler{Client: k8s}
	if err := r.patchStatus(ctx, fetched, changed); err != nil {
		t.Fatalf("status patch from a stale copy: %v", err)
	}
	if err := get(t, ns, "stale", x); err != nil {
		t.Fatal(err)
	}
	if condition(x, "Probe") == nil || condition(x, ConditionReconciled) == nil || x.Labels["written"] != "meanwhile" {
		t.Fatalf("status %+v, labels %v", x.Status.Conditions, x.Labels)
	}
}
