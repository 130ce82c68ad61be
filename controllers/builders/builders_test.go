package builders

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
)

func sample() *v1alpha1.XTrace {
	return &v1alpha1.XTrace{
		ObjectMeta: metav1.ObjectMeta{Name: "obs", Namespace: "team"},
		Spec: v1alpha1.XTraceSpec{
			Database: v1alpha1.DatabaseSpec{URLSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "uri"}},
		},
	}
}

var in = Inputs{Image: "ghcr.io/xtrace-dev/xtrace:v1.2.3", Version: "v1.2.3", SecretVersions: map[string]string{"pg-app": "10", "obs-auth": "11"}}

func envMap(env []corev1.EnvVar) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range env {
		m[e.Name] = e
	}
	return m
}

func TestDeploymentEnvNeverHoldsSecrets(t *testing.T) {
	for name, x := range map[string]*v1alpha1.XTrace{
		"url secret": sample(),
		"host and password": func() *v1alpha1.XTrace {
			x := sample()
			x.Spec.Database = v1alpha1.DatabaseSpec{Host: "pg.db", Port: 6432, DBName: "xt", User: "xt", SSLMode: "require",
				PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-pass", Key: "password"}}
			return x
		}(),
	} {
		d := Deployment(x, in)
		env := envMap(d.Spec.Template.Spec.Containers[0].Env)
		for _, secretVar := range []string{"API_BEARER_TOKEN", "XTRACE_PUBLIC_KEY", "XTRACE_SECRET_KEY"} {
			if env[secretVar].Value != "" || env[secretVar].ValueFrom == nil || env[secretVar].ValueFrom.SecretKeyRef.Name != "obs-auth" {
				t.Errorf("%s: %s must come from the auth Secret: %+v", name, secretVar, env[secretVar])
			}
		}
		if name == "url secret" {
			if ref := env["DATABASE_URL"].ValueFrom.SecretKeyRef; ref.Name != "pg-app" || ref.Key != "uri" || env["DATABASE_URL"].Value != "" {
				t.Errorf("DATABASE_URL: %+v", env["DATABASE_URL"])
			}
		} else {
			if env["PGHOST"].Value != "pg.db" || env["PGPORT"].Value != "6432" || env["PGDATABASE"].Value != "xt" || env["PGUSER"].Value != "xt" ||
				env["PGSSLMODE"].Value != "require" || env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name != "pg-pass" || env["PGPASSWORD"].Value != "" {
				t.Errorf("libpq env: %+v", env)
			}
			if _, ok := env["DATABASE_URL"]; ok {
				t.Error("DATABASE_URL set together with PG*")
			}
		}
		for k, want := range map[string]string{"BIND_ADDR": "0.0.0.0:8742", "XTRACE_RETENTION_INTERVAL": "0", "RATE_LIMIT_QPS": "20",
			"RATE_LIMIT_BURST": "40", "METRICS_RETENTION_DAYS": "30", "DEFAULT_PROJECT_ID": "default", "XTRACE_DB_MAX_CONNS": "20"} {
			if env[k].Value != want {
				t.Errorf("%s: %s = %q, want %q", name, k, env[k].Value, want)
			}
		}
		for _, k := range []string{"TRACES_RETENTION_DAYS", "DATABASE_READ_URL", "DATABASE_READ_HOST"} {
			if _, ok := env[k]; ok {
				t.Errorf("%s: %s set on the server", name, k)
			}
		}
	}
}

func TestDeploymentShape(t *testing.T) {
	x := sample()
	x.Spec.Replicas = ptr.To[int32](3)
	x.Spec.PodLabels = map[string]string{"team": "ml", LabelInstance: "spoofed"}
	x.Spec.PodAnnotations = map[string]string{"sidecar": "off"}
	x.Spec.ExtraEnv = []corev1.EnvVar{{Name: "XTRACE_LOG_LEVEL", Value: "debug"}}
	d := Deployment(x, in)
	pod := d.Spec.Template
	c := pod.Spec.Containers[0]
	if *d.Spec.Replicas != 3 || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas/strategy: %+v", d.Spec)
	}
	if pod.Labels["team"] != "ml" || pod.Labels[LabelInstance] != "obs" || pod.Annotations["sidecar"] != "off" || pod.Annotations[ConfigHashAnnotation] == "" {
		t.Errorf("pod metadata: %v %v", pod.Labels, pod.Annotations)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels", k, v)
		}
	}
	sc := c.SecurityContext
	if !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context: %+v", sc)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.StartupProbe == nil {
		t.Errorf("probes")
	}
	if c.Image != in.Image || d.Labels[LabelVersion] != "v1.2.3" || c.Env[len(c.Env)-1].Name != "XTRACE_LOG_LEVEL" {
		t.Errorf("image/version/extraEnv")
	}
	x.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 2, MaxReplicas: 5}
	if Deployment(x, in).Spec.Replicas != nil {
		t.Error("with autoscaling the Deployment must leave replicas to the HPA")
	}
}

func TestConfigHashFollowsInputs(t *testing.T) {
	x := sample()
	h := func(x *v1alpha1.XTrace, in Inputs) string {
		return Deployment(x, in).Spec.Template.Annotations[ConfigHashAnnotation]
	}
	base := h(x, in)
	if h(sample(), in) != base {
		t.Fatal("hash not stable")
	}
	rotated := in
	rotated.SecretVersions = map[string]string{"pg-app": "10", "obs-auth": "12"}
	if h(x, rotated) == base {
		t.Error("a rotated Secret must change the hash")
	}
	x2 := sample()
	x2.Spec.RateLimit.QPS = 5
	if h(x2, in) == base {
		t.Error("a setting must change the hash")
	}
}

func TestOptionalObjects(t *testing.T) {
	x := sample()
	if PodDisruptionBudget(x, in) != nil || HorizontalPodAutoscaler(x, in) != nil || NetworkPolicy(x, in) != nil || ServiceMonitor(x, in) != nil {
		t.Fatal("optional objects built by default with one replica")
	}
	x.Spec.Replicas = ptr.To[int32](2)
	if p := PodDisruptionBudget(x, in); p == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
		t.Fatal("PDB by default with 2 replicas")
	}
	x.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{Enabled: ptr.To(false)}
	if PodDisruptionBudget(x, in) != nil {
		t.Fatal("PDB explicitly disabled")
	}
	x.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilizationPercentage: 70}
	hpa := HorizontalPodAutoscaler(x, in)
	if hpa == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 6 || hpa.Spec.ScaleTargetRef.Name != "obs" ||
		*hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
		t.Fatalf("HPA: %+v", hpa)
	}
	x.Spec.NetworkPolicy = &v1alpha1.NetworkPolicySpec{Enabled: true}
	np := NetworkPolicy(x, in)
	if np == nil || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 8742 || np.Spec.Ingress[0].From[0].PodSelector == nil {
		t.Fatalf("NetworkPolicy: %+v", np)
	}
	x.Spec.ServiceMonitor = &v1alpha1.ServiceMonitorSpec{Enabled: true, Interval: "15s"}
	sm := ServiceMonitor(x, in)
	if sm == nil || sm.GetKind() != "ServiceMonitor" || !strings.Contains(sm.GetAPIVersion(), "monitoring.coreos.com") {
		t.Fatalf("ServiceMonitor: %v", sm)
	}
	x.Spec.ServiceAccountName = "own-sa"
	if ServiceAccount(x, in) != nil || Deployment(x, in).Spec.Template.Spec.ServiceAccountName != "own-sa" {
		t.Fatal("user's service account")
	}
}

func TestCronJobAndSecretAndService(t *testing.T) {
	x := sample()
	x.Spec.Retention = v1alpha1.RetentionSpec{MetricsDays: 7, TracesDays: 14, Schedule: "0 3 * * *", Suspend: true}
	cj := RetentionCronJob(x, in)
	c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	env := envMap(c.Env)
	if cj.Name != "obs-retention" || cj.Spec.Schedule != "0 3 * * *" || !*cj.Spec.Suspend || cj.Spec.ConcurrencyPolicy != "Forbid" ||
		c.Args[0] != "retention" || env["METRICS_RETENTION_DAYS"].Value != "7" || env["TRACES_RETENTION_DAYS"].Value != "14" ||
		env["DATABASE_URL"].ValueFrom == nil || *cj.Spec.SuccessfulJobsHistoryLimit != 3 {
		t.Fatalf("cronjob: %+v", cj.Spec)
	}
	if _, ok := env["API_BEARER_TOKEN"]; ok {
		t.Error("the retention job needs no API token")
	}
	s := AuthSecret(x, in, "tok", "pk", "sk")
	if s.Name != "obs-auth" || s.StringData[KeyURL] != "http://obs.team.svc:8742" || s.StringData[KeyBearerToken] != "tok" {
		t.Fatalf("secret: %+v", s)
	}
	x.Spec.Auth.ExistingSecret = "mine"
	if AuthSecret(x, in, "a", "b", "c") != nil || NamesOf(x).AuthSecret() != "mine" {
		t.Fatal("existing secret")
	}
	x.Spec.Service = v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 9000, Annotations: map[string]string{"lb": "internal"}}
	svc := Service(x, in)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.Ports[0].Port != 9000 || svc.Annotations["lb"] != "internal" ||
		envMap(Deployment(x, in).Spec.Template.Spec.Containers[0].Env)["BIND_ADDR"].Value != "0.0.0.0:9000" {
		t.Fatalf("service: %+v", svc)
	}
}

func TestVersionOf(t *testing.T) {
	for img, want := range map[string]string{"a/b:v1": "v1", "reg:5000/a/b": "", "reg:5000/a/b:1.2": "1.2", "a@sha256:abc": "", "b": ""} {
		if got := VersionOf(img); got != want {
			t.Errorf("VersionOf(%q) = %q, want %q", img, got, want)
		}
	}
}

// TestRetentionSettingsRollOnlyWhatUsesThem: the server prunes nothing under
// the operator (XTRACE_RETENTION_INTERVAL=0), so tracesDays, schedule and
// suspend are the CronJob's alone and changing them must leave the server pod
// template (and so the pods) alone. metricsDays is different: the server
// refuses metric points older than METRICS_RETENTION_DAYS, so the pods need
// the new window, and changing it rolls them.
func TestRetentionSettingsRollOnlyWhatUsesThem(t *testing.T) {
	base := sample()
	base.Spec.Retention = v1alpha1.RetentionSpec{MetricsDays: 30, TracesDays: 90, Schedule: "17 * * * *"}
	template := func(x *v1alpha1.XTrace) corev1.PodTemplateSpec { return Deployment(x, in).Spec.Template }
	for name, change := range map[string]func(*v1alpha1.RetentionSpec){
		"tracesDays": func(r *v1alpha1.RetentionSpec) { r.TracesDays = 7 },
		"schedule":   func(r *v1alpha1.RetentionSpec) { r.Schedule = "0 3 * * *" },
		"suspend":    func(r *v1alpha1.RetentionSpec) { r.Suspend = true },
	} {
		x := base.DeepCopy()
		change(&x.Spec.Retention)
		if !equality.Semantic.DeepEqual(template(base), template(x)) {
			t.Errorf("changing retention.%s changed the server pod template", name)
		}
		if equality.Semantic.DeepEqual(RetentionCronJob(base, in), RetentionCronJob(x, in)) {
			t.Errorf("changing retention.%s did not reach the CronJob", name)
		}
	}
	x := base.DeepCopy()
	x.Spec.Retention.MetricsDays = 7
	if template(x).Annotations[ConfigHashAnnotation] == template(base).Annotations[ConfigHashAnnotation] {
		t.Error("changing retention.metricsDays must roll the server pods (they refuse points older than the window)")
	}
	if envMap(template(x).Spec.Containers[0].Env)["METRICS_RETENTION_DAYS"].Value != "7" || jobEnvOf(x)["METRICS_RETENTION_DAYS"].Value != "7" {
		t.Error("metricsDays not given to both the server and the CronJob")
	}
}

func TestReadReplicas(t *testing.T) {
	x := sample()
	x.Spec.Database.ReadURLSecretRef = &v1alpha1.SecretKeyRef{Name: "pg-app-ro", Key: "uri"}
	env := envMap(Deployment(x, in).Spec.Template.Spec.Containers[0].Env)
	if ref := env["DATABASE_READ_URL"].ValueFrom; ref == nil || ref.SecretKeyRef.Name != "pg-app-ro" || ref.SecretKeyRef.Key != "uri" ||
		env["DATABASE_READ_URL"].Value != "" {
		t.Fatalf("DATABASE_READ_URL: %+v", env["DATABASE_READ_URL"])
	}
	if _, ok := jobEnvOf(x)["DATABASE_READ_URL"]; ok {
		t.Error("the retention job writes: it must not get the read replicas")
	}

	x = sample()
	x.Spec.Database = v1alpha1.DatabaseSpec{Host: "pg-rw", DBName: "app", User: "app", ReadHost: "pg-ro,pg-ro2",
		PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "password"}}
	env = envMap(Deployment(x, in).Spec.Template.Spec.Containers[0].Env)
	if env["DATABASE_READ_HOST"].Value != "pg-ro,pg-ro2" || env["PGHOST"].Value != "pg-rw" {
		t.Fatalf("read host: %+v", env)
	}
	if _, ok := jobEnvOf(x)["DATABASE_READ_HOST"]; ok {
		t.Error("the retention job must not get the read replicas")
	}
}

func jobEnvOf(x *v1alpha1.XTrace) map[string]corev1.EnvVar {
	return envMap(RetentionCronJob(x, in).Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env)
}
