// Package packaging checks what users install: the kustomize config and the
// Helm chart render, are accepted by a real API server (server-side dry-run),
// agree with the generated CRD and RBAC; the Argo CD health script behaves.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/xtrace-dev/xtrace-operator/internal/testcluster"
)

const root = "../.."

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

func helmBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs helm (bin/): make test installs and runs it")
	}
	h := os.Getenv("HELM")
	if h == "" {
		h = filepath.Join(root, "bin", "helm-v3.22.0.d", "helm")
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("helm not found at %s: run `make helm` (make test does)", h)
	}
	return h
}

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

func chart(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "xt", filepath.Join(root, "charts/xtrace-operator"), "--namespace", "xtrace-system",
		"--kube-version", testcluster.KubernetesVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return decode(t, helm(t, args...))
}

func decode(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func byKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func TestChartCRDAndRBACMatchGenerated(t *testing.T) {
	if !bytes.Equal(read(t, "charts/xtrace-operator/files/crd.yaml"), read(t, "config/crd/bases/observability.xtrace.dev_xtraces.yaml")) {
		t.Error("the chart's CRD differs from config/crd: run `make manifests`")
	}
	var generated struct{ Rules []any }
	if err := yaml.Unmarshal(read(t, "config/rbac/role.yaml"), &generated); err != nil {
		t.Fatal(err)
	}
	objs := chart(t)
	var chartRules []any
	for _, cr := range byKind(objs, "ClusterRole") {
		chartRules = cr.Object["rules"].([]any)
	}
	genJSON, _ := yaml.Marshal(generated.Rules)
	chartJSON, _ := yaml.Marshal(chartRules)
	if !bytes.Equal(genJSON, chartJSON) {
		t.Errorf("chart ClusterRole rules differ from the generated RBAC:\n%s\nvs\n%s", chartJSON, genJSON)
	}
	crds := byKind(objs, "CustomResourceDefinition")
	if len(crds) != 1 || crds[0].GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("chart CRD: %d, annotations %v", len(crds), crds)
	}
	if got := chart(t, "crds.install=false"); len(byKind(got, "CustomResourceDefinition")) != 0 {
		t.Error("crds.install=false still renders the CRD")
	}
	dep := byKind(chart(t, "watchNamespaces={team-a,team-b}", "image.tag=v9", "metrics.serviceMonitor.enabled=true"), "Deployment")[0]
	c := dep.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	if c["image"] != "ghcr.io/xtrace-dev/xtrace-operator:v9" || !strings.Contains(fmt.Sprint(c["env"]), "team-a,team-b") {
		t.Errorf("values not applied: %v", c)
	}
}

// TestSamplesAreAllListed: `kubectl apply -k config/samples`, the dry-run
// below and the end-to-end test all go through the kustomization, so every
// sample file must be in it.
func TestSamplesAreAllListed(t *testing.T) {
	var k struct{ Resources []string }
	if err := yaml.Unmarshal(read(t, "config/samples/kustomization.yaml"), &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			t.Errorf("config/samples/%s is not listed in config/samples/kustomization.yaml", name)
		}
	}
	if len(byKind(kustomize(t, "config/samples"), "XTrace")) != len(k.Resources) {
		t.Error("config/samples does not render one XTrace per listed file")
	}
}

func TestHelmLint(t *testing.T) {
	out := helm(t, "lint", "--strict", filepath.Join(root, "charts/xtrace-operator"), "--kube-version", testcluster.KubernetesVersion)
	if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Fatalf("helm lint: %s", out)
	}
	// The values schema rejects typos and wrong types.
	cmd := exec.Command(helmBin(t), "template", "xt", filepath.Join(root, "charts/xtrace-operator"), "--kube-version",
		testcluster.KubernetesVersion, "--set", "replicaCount=lots")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "replicaCount") {
		t.Fatalf("schema accepted replicaCount=lots: %s", out)
	}
}

// TestRenderingsApplyToARealAPIServer: every rendered object passes a
// server-side dry-run apply (CRD installed first, for real).
func TestRenderingsApplyToARealAPIServer(t *testing.T) {
	api := testcluster.StartAPIServer(t, testcluster.Options{})
	c, err := client.New(api.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "xtrace-system"}}); err != nil {
		t.Fatal(err)
	}
	renderings := map[string][]*unstructured.Unstructured{
		"kustomize config/default":        kustomize(t, "config/default"),
		"kustomize config/network-policy": kustomize(t, "config/network-policy"),
		"kustomize config/samples":        kustomize(t, "config/samples"),
		"helm chart (defaults)":           chart(t),
		"helm chart (namespaced watch)":   chart(t, "watchNamespaces={a,b}", "leaderElection.enabled=false", "serviceAccount.name=custom"),
	}
	// CRDs first, for real: the samples need them.
	for _, u := range byKind(renderings["kustomize config/default"], "CustomResourceDefinition") {
		if err := c.Create(ctx, u.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	waitForCRD(t, c)
	applied := 0
	for name, objs := range renderings {
		if len(objs) == 0 {
			t.Errorf("%s rendered nothing", name)
		}
		for _, u := range objs {
			if u.GetNamespace() == "" && isNamespaced(u.GetKind()) {
				u.SetNamespace("xtrace-system")
			}
			if u.GetNamespace() != "" && u.GetNamespace() != "xtrace-system" {
				u.SetNamespace("xtrace-system") // the overlays' placeholder "system" namespace
			}
			err := c.Patch(ctx, u, client.Apply, client.DryRunAll, client.FieldOwner("packaging-test"), client.ForceOwnership)
			if err != nil {
				t.Errorf("%s: %s %s rejected: %v", name, u.GetKind(), u.GetName(), err)
				continue
			}
			applied++
		}
	}
	t.Logf("%d objects accepted by the API server", applied)
	// The optional Prometheus overlay renders (its kind needs the Prometheus Operator CRD to apply).
	if sm := kustomize(t, "config/prometheus"); len(byKind(sm, "ServiceMonitor")) != 1 {
		t.Error("config/prometheus renders no ServiceMonitor")
	}
}

func isNamespaced(kind string) bool {
	switch kind {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding":
		return false
	}
	return true
}

func waitForCRD(t *testing.T, c client.Client) {
	t.Helper()
	for i := 0; i < 100; i++ {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("observability.xtrace.dev/v1alpha1")
		list.SetKind("XTraceList")
		if err := c.List(context.Background(), list); err == nil {
			return
		}
		_ = exec.Command("sleep", "0.1").Run()
	}
	t.Fatal("XTrace CRD not served")
}

// luaValue converts decoded JSON to Lua values.
func luaValue(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		tbl := L.NewTable()
		for k, val := range x {
			tbl.RawSetString(k, luaValue(L, val))
		}
		return tbl
	case []any:
		tbl := L.NewTable()
		for _, val := range x {
			tbl.Append(luaValue(L, val))
		}
		return tbl
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

func health(t *testing.T, script string, objYAML string) (string, string) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(objYAML), &obj); err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", luaValue(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("lua: %v", err)
	}
	ret := L.Get(-1).(*lua.LTable)
	return ret.RawGetString("status").String(), ret.RawGetString("message").String()
}

func TestArgoCDHealth(t *testing.T) {
	script := string(read(t, "config/argocd/health.lua"))
	var cm struct{ Data map[string]string }
	if err := yaml.Unmarshal(read(t, "config/argocd/argocd-cm.yaml"), &cm); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(cm.Data["resource.customizations.health.observability.xtrace.dev_XTrace"]) != strings.TrimSpace(script) {
		t.Fatal("config/argocd/argocd-cm.yaml does not carry config/argocd/health.lua unchanged")
	}
	cond := func(typ, status, reason string) string {
		return fmt.Sprintf("{type: %s, status: %q, reason: %s, message: m}", typ, status, reason)
	}
	cases := []struct{ name, obj, want string }{
		{"no status", `{metadata: {generation: 1}}`, "Progressing"},
		{"stale generation", `{metadata: {generation: 3}, status: {observedGeneration: 2, conditions: [` + cond("Ready", "True", "AllPodsReady") + `]}}`, "Progressing"},
		{"ready", `{metadata: {generation: 2}, status: {observedGeneration: 2, conditions: [` + cond("Ready", "True", "AllPodsReady") + `, ` + cond("Reconciled", "True", "Applied") + `]}}`, "Healthy"},
		{"rolling", `{metadata: {generation: 2}, status: {observedGeneration: 2, conditions: [` + cond("Ready", "False", "SomePodsNotReady") + `, ` + cond("Reconciled", "True", "Applied") + `]}}`, "Progressing"},
		{"missing secret", `{metadata: {generation: 1}, status: {observedGeneration: 1, conditions: [` + cond("Ready", "False", "SecretNotFound") + `, ` + cond("Reconciled", "False", "SecretNotFound") + `]}}`, "Degraded"},
		{"paused", `{metadata: {generation: 1}, status: {observedGeneration: 1, conditions: [` + cond("Ready", "False", "Paused") + `, ` + cond("Reconciled", "False", "Paused") + `]}}`, "Suspended"},
	}
	for _, c := range cases {
		if got, msg := health(t, script, c.obj); got != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got, msg, c.want)
		}
	}
}
