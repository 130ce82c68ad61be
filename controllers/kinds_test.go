package controllers

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// TestRBACGrantsExactlyTheVerbsUsed reads the generated ClusterRole (from the
// markers in kinds.go) and checks every kind of the table, and Secrets, get
// exactly the verbs the operator uses: nothing missing, nothing extra.
func TestRBACGrantsExactlyTheVerbsUsed(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role struct {
		Rules []struct {
			APIGroups []string `json:"apiGroups"`
			Resources []string `json:"resources"`
			Verbs     []string `json:"verbs"`
		} `json:"rules"`
	}
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatal(err)
	}
	granted := func(group, resource string) []string {
		var verbs []string
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) {
				verbs = append(verbs, r.Verbs...)
			}
		}
		slices.Sort(verbs)
		return slices.Compact(verbs)
	}
	check := func(group, resource string, used []string) {
		want := slices.Sorted(slices.Values(used))
		if got := granted(group, resource); !slices.Equal(got, want) {
			t.Errorf("%s (group %q): RBAC grants %v, the operator uses %v", resource, group, got, want)
		}
	}
	for _, k := range managedKinds {
		check(k.group, k.resource, managedVerbs)
	}
	check("", "secrets", secretVerbs)
}

// TestEveryBuilderHasAKind: an XTrace with every feature on yields one object
// of each kind of the table, and nothing turned off yields the optional ones.
func TestEveryBuilderHasAKind(t *testing.T) {
	x := &v1alpha1.XTrace{}
	x.Name, x.Namespace = "obs", "team"
	x.Spec.Database.URLSecretRef = &v1alpha1.SecretKeyRef{Name: "pg", Key: "uri"}
	x.Spec.Replicas = ptr.To[int32](2)
	x.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true}
	x.Spec.NetworkPolicy = &v1alpha1.NetworkPolicySpec{Enabled: true}
	x.Spec.ServiceMonitor = &v1alpha1.ServiceMonitorSpec{Enabled: true}
	in := builders.Inputs{Image: "img:v1", Version: "v1"}
	for _, k := range managedKinds {
		obj := k.build(x, in)
		if obj == nil {
			t.Errorf("%s: not built with every feature on", k.resource)
			continue
		}
		if kindOf(obj) != kindOf(k.empty()) {
			t.Errorf("%s: builds a %s, the table's empty object is a %s", k.resource, kindOf(obj), kindOf(k.empty()))
		}
		for key, v := range builders.InstanceLabels(x) {
			if obj.GetLabels()[key] != v {
				t.Errorf("%s: lacks the label %s=%s that deleting unwanted objects lists by", k.resource, key, v)
			}
		}
	}
	x.Spec = v1alpha1.XTraceSpec{Database: x.Spec.Database, ServiceAccountName: "own"}
	var built []string
	for _, k := range managedKinds {
		if k.build(x, in) != nil {
			built = append(built, k.resource)
		}
	}
	if want := []string{"deployments", "services", "cronjobs"}; !slices.Equal(built, want) {
		t.Errorf("with every feature off: built %v, want %v", built, want)
	}
}
