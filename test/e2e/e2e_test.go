// Package e2e runs the operator binary on a simulated cluster (real
// kube-apiserver, etcd, kube-controller-manager and kube-scheduler; kwok
// plays the kubelet) and then the real xtrace binary with exactly the
// environment the operator gives its pods.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var ctx = context.Background()

func build(t *testing.T, pkg string) string {
	t.Helper()
	bin, err := devproc.Build(pkg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func poll(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
}

func loadSample(t *testing.T, file string) *v1alpha1.XTrace {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	x := &v1alpha1.XTrace{}
	if err := yaml.UnmarshalStrict(b, x); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return x
}

// sampleFiles are the samples config/samples/kustomization.yaml lists (a
// packaging test checks it lists every file there).
func sampleFiles(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Resources []string }
	if err := yaml.Unmarshal(b, &k); err != nil || len(k.Resources) == 0 {
		t.Fatalf("config/samples/kustomization.yaml: %v, %d resources", err, len(k.Resources))
	}
	return k.Resources
}

// crds installs the XTrace CRD in the test clusters.
var crds = testcluster.Options{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}}

// newClient is an admin client of the cluster that knows the XTrace kind.
func newClient(t *testing.T, cluster *testcluster.APIServer) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	k8s, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return k8s
}

func TestOperatorOnASimulatedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Kubernetes binaries (make k8s-binaries)")
	}
	cluster := testcluster.StartSimulated(t, crds)
	k8s := newClient(t, cluster)

	// The operator, as its container runs it (leader election on).
	manager := build(t, ".")
	probePort := freePort(t)
	cmd := devproc.Command(manager, "--leader-elect", "--leader-election-namespace=default", "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probePort), "--default-server-image=ghcr.io/xtrace-dev/xtrace:v0.1.0")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.KubeconfigPath, "WATCH_NAMESPACE=")
	logs, _ := os.Create(filepath.Join(t.TempDir(), "manager.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		devproc.Stop(cmd)
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("manager log:\n%s", tailString(string(b), 4000))
		}
	})
	poll(t, "manager healthz", 30*time.Second, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", probePort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	// Every sample is valid against the real API server.
	for _, f := range sampleFiles(t) {
		x := loadSample(t, f)
		x.Namespace = "default"
		if err := k8s.Create(ctx, x, client.DryRunAll); err != nil {
			t.Errorf("sample %s rejected: %v", f, err)
		}
	}

	// The minimal sample, with its database Secret pointing at a real throwaway PostgreSQL.
	dbURL := pgtest.NewDatabase(t)
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "xtrace-db", Namespace: "default"},
		StringData: map[string]string{"uri": dbURL}}); err != nil {
		t.Fatal(err)
	}
	// Reads go to "replicas": the same database under another URL (the server
	// cannot tell, and this test is about what the operator hands the pods).
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "xtrace-db-ro", Namespace: "default"},
		StringData: map[string]string{"uri": withApplicationName(t, dbURL, "xtrace-read")}}); err != nil {
		t.Fatal(err)
	}
	x := loadSample(t, "observability_v1alpha1_xtrace_minimal.yaml")
	x.Namespace = "default"
	x.Spec.Database.ReadURLSecretRef = &v1alpha1.SecretKeyRef{Name: "xtrace-db-ro", Key: "uri"}
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	waitReady := func(replicas int32) {
		poll(t, fmt.Sprintf("Ready=True with %d ready replicas", replicas), 90*time.Second, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(x), x); err != nil {
				return err
			}
			c := meta.FindStatusCondition(x.Status.Conditions, "Ready")
			if c == nil || c.Status != metav1.ConditionTrue || x.Status.ReadyReplicas != replicas || x.Status.Replicas != replicas ||
				x.Status.ObservedGeneration != x.Generation {
				return fmt.Errorf("ready %d/%d, conditions %+v", x.Status.ReadyReplicas, x.Status.Replicas, x.Status.Conditions)
			}
			return nil
		})
	}
	waitReady(1)

	// Scale through the scale subresource, as kubectl scale and autoscalers do.
	scale := &autoscalingv1.Scale{}
	if err := k8s.SubResource("scale").Get(ctx, x, scale); err != nil {
		t.Fatal(err)
	}
	if scale.Status.Selector == "" || scale.Spec.Replicas != 1 {
		t.Fatalf("scale subresource: %+v", scale)
	}
	scale.Spec.Replicas = 3
	if err := k8s.SubResource("scale").Update(ctx, x, client.WithSubResourceBody(scale)); err != nil {
		t.Fatal(err)
	}
	waitReady(3)

	// Rotating the generated credentials rolls the pods: a new ReplicaSet.
	replicaSets := func() int {
		var list appsv1.ReplicaSetList
		_ = k8s.List(ctx, &list, client.InNamespace("default"), client.MatchingLabels(builders.SelectorLabels(x, builders.ComponentServer)))
		return len(list.Items)
	}
	waitForNewReplicaSet := func(what string, before int) {
		poll(t, "a new ReplicaSet after "+what, 60*time.Second, func() error {
			if n := replicaSets(); n <= before {
				return fmt.Errorf("%d ReplicaSets, had %d", n, before)
			}
			return nil
		})
		waitReady(3)
	}
	before := replicaSets()
	auth := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: x.Status.AuthSecretName}, auth); err != nil {
		t.Fatal(err)
	}
	oldToken := string(auth.Data[builders.KeyBearerToken])
	newToken := "rotated-" + oldToken[len(oldToken)-16:]
	auth.Data[builders.KeyBearerToken] = []byte(newToken + "," + oldToken)
	if err := k8s.Update(ctx, auth); err != nil {
		t.Fatal(err)
	}
	waitForNewReplicaSet("rotating the auth Secret", before)

	// The pods read from the replicas in the read Secret, and rotating it rolls them too.
	oldHashes := map[string]bool{}
	for _, pod := range serverPods(t, k8s, x) {
		oldHashes[pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]] = true
		e := envVar(pod.Spec.Containers[0].Env, "DATABASE_READ_URL")
		if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "xtrace-db-ro" || e.ValueFrom.SecretKeyRef.Key != "uri" {
			t.Fatalf("pod %s: DATABASE_READ_URL %+v", pod.Name, e)
		}
	}
	before = replicaSets()
	readSecret := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "xtrace-db-ro"}, readSecret); err != nil {
		t.Fatal(err)
	}
	readSecret.Data["uri"] = []byte(withApplicationName(t, dbURL, "xtrace-read-rotated"))
	if err := k8s.Update(ctx, readSecret); err != nil {
		t.Fatal(err)
	}
	waitForNewReplicaSet("rotating the read Secret", before)
	poll(t, "only pods with a new pod-template hash", 60*time.Second, func() error {
		for _, pod := range serverPods(t, k8s, x) {
			if oldHashes[pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]] {
				return fmt.Errorf("pod %s has the pod-template hash of before the rotation", pod.Name)
			}
		}
		return nil
	})

	// Operator and server agree: run the real xtrace binary with the pod's environment.
	dep := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: x.Name}, dep); err != nil {
		t.Fatal(err)
	}
	container := dep.Spec.Template.Spec.Containers[0]
	env := resolveEnv(t, k8s, "default", container.Env)
	port := freePort(t)
	env["BIND_ADDR"] = "127.0.0.1:" + strconv.Itoa(port) // the pod binds 0.0.0.0; this test host must not
	server := devproc.Command(build(t, "./server/cmd/xtrace"), container.Args...)
	server.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		server.Env = append(server.Env, k+"="+v)
	}
	server.Stdout, server.Stderr = io.Discard, os.Stderr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devproc.Stop(server) })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	poll(t, "xtrace ready (probe path from the Deployment)", 30*time.Second, func() error {
		resp, err := http.Get(base + container.ReadinessProbe.HTTPGet.Path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	for _, tok := range []string{newToken, oldToken} {
		req, _ := http.NewRequest("POST", base+"/v1/metrics/batch", strings.NewReader(`{"metrics":[{"name":"e2e","value":1}]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("push with a token from the operator's Secret: %d", resp.StatusCode)
		}
	}
	// Prometheus remote-write at the status' URL (its path, on this host).
	rw, err := url.Parse(x.Status.RemoteWriteURL)
	if err != nil || rw.Host != fmt.Sprintf("%s.default.svc:%d", x.Name, x.Spec.Service.PortOrDefault()) {
		t.Fatalf("status.remoteWriteURL %q (%v)", x.Status.RemoteWriteURL, err)
	}
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "e2e_remote_write"}, {Name: "job", Value: "e2e"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", base+rw.Path, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Authorization", "Bearer "+newToken)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("remote-write to the status' URL: %v %v", resp, err)
	}
	req, _ = http.NewRequest("GET", base+"/api/public/metrics/names", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong token accepted: %v %v", resp, err)
	}

	// Deleting the XTrace garbage-collects everything it owned.
	if err := k8s.Delete(ctx, x); err != nil {
		t.Fatal(err)
	}
	poll(t, "garbage collection", 60*time.Second, func() error {
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.Secret{}} {
			name := x.Name
			if _, ok := obj.(*corev1.Secret); ok {
				name = x.Name + "-auth"
			}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, obj); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T %s still there (%v)", obj, name, err)
			}
		}
		var pods corev1.PodList
		_ = k8s.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(builders.SelectorLabels(x, builders.ComponentServer)))
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})
}

// resolveEnv turns a container's env (values and secretKeyRefs) into plain values, as the kubelet would.
func resolveEnv(t *testing.T, k8s client.Client, ns string, env []corev1.EnvVar) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := &corev1.Secret{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, s); err != nil {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				t.Fatalf("env %s: %v", e.Name, err)
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				t.Fatalf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			out[e.Name] = string(v)
		default:
			t.Fatalf("env %s: unsupported source %+v", e.Name, e.ValueFrom)
		}
	}
	return out
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// serverPods are the running (not terminating) server pods of x.
func serverPods(t *testing.T, k8s client.Client, x *v1alpha1.XTrace) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := k8s.List(ctx, &list, client.InNamespace(x.Namespace), client.MatchingLabels(builders.SelectorLabels(x, builders.ComponentServer))); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("no server pods")
	}
	return out
}

func envVar(env []corev1.EnvVar, name string) *corev1.EnvVar {
	for i := range env {
		if env[i].Name == name {
			return &env[i]
		}
	}
	return nil
}

// withApplicationName returns a connection string for the same database that
// names itself differently (so it is a different, still working, value).
func withApplicationName(t *testing.T, connString, name string) string {
	t.Helper()
	u, err := url.Parse(connString)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return connString + " application_name=" + name // keyword/value form
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}
