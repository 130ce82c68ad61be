package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// NarrowCaching sets what the manager keeps in memory of the cluster, on top
// of the namespaces opts already restricts it to:
//
//   - of the managed kinds, only objects labelled managed-by=xtrace-operator
//     (every object the operator creates carries it), not every Deployment,
//     Service or ServiceAccount of the cluster;
//   - of Secrets, metadata only: the controller watches them metadata-only
//     (it needs to know that a referenced one changed, not its data), the
//     cache also drops their annotations (kubectl's last-applied-configuration
//     holds a Secret's whole data) and managed fields, and the client never
//     reads a Secret through the cache, which would start a second informer
//     holding every Secret's data. The reconciler reads the few Secrets it
//     consumes from the API server.
//
// Controller-runtime keeps one cache configuration per kind, metadata-only or
// not, so a label selector on Secrets would also hide the referenced Secrets
// (the user's, unlabelled) from the metadata watch: hence no selector there.
func NarrowCaching(opts *ctrl.Options) {
	managedBy := labels.SelectorFromSet(labels.Set{builders.LabelManagedBy: builders.ManagedBy})
	if opts.Cache.ByObject == nil {
		opts.Cache.ByObject = map[client.Object]cache.ByObject{}
	}
	for _, k := range managedKinds {
		if k.watched() {
			opts.Cache.ByObject[k.empty()] = cache.ByObject{Label: managedBy}
		}
	}
	opts.Cache.ByObject[&corev1.Secret{}] = cache.ByObject{Transform: stripSecretMetadata}

	if opts.Client.Cache == nil {
		opts.Client.Cache = &client.CacheOptions{}
	}
	opts.Client.Cache.DisableFor = append(opts.Client.Cache.DisableFor, &corev1.Secret{})
}

// stripSecretMetadata keeps of a cached Secret what the watch needs: name,
// namespace, labels, owners, resourceVersion.
func stripSecretMetadata(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetAnnotations(nil)
		m.SetManagedFields(nil)
	}
	return obj, nil
}
