package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// errConflict: an object with our name exists and is not ours; we do not adopt it.
type errConflict struct{ kind, name string }

func (e *errConflict) Error() string {
	return fmt.Sprintf("%s %s exists and is not owned by this XTrace; rename or delete it", e.kind, e.name)
}

// apply creates desired if missing, or updates it when what the operator
// wants changed (tracked by a hash annotation, so defaults the API server
// fills in never cause writes). Labels and annotations other actors added
// are kept. It returns "created", "updated" or "" (no write).
func (r *XTraceReconciler) apply(ctx context.Context, x *v1alpha1.XTrace, desired client.Object) (string, error) {
	gvk, err := apiutil.GVKForObject(desired, r.Scheme)
	if err != nil {
		return "", err
	}
	hash := builders.Hash(desired)
	annotations := desired.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[builders.SpecHashAnnotation] = hash
	desired.SetAnnotations(annotations)
	if err := controllerutil.SetControllerReference(x, desired, r.Scheme); err != nil {
		return "", err
	}

	existing, err := r.newObject(desired)
	if err != nil {
		return "", err
	}
	err = r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		return "created", r.Create(ctx, desired)
	}
	if err != nil {
		return "", err
	}
	if !controlledBy(existing, x) {
		return "", &errConflict{gvk.Kind, desired.GetName()}
	}
	if existing.GetAnnotations()[builders.SpecHashAnnotation] == hash {
		return "", nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing); err != nil {
			return err
		}
		return r.Update(ctx, merge(existing, desired))
	})
	if apierrors.IsInvalid(err) {
		// An immutable field changed (e.g. a selector): replace the object.
		if err := r.Delete(ctx, existing, client.PropagationPolicy("Background")); err != nil && !apierrors.IsNotFound(err) {
			return "", err
		}
		desired.SetResourceVersion("")
		return "recreated", r.Create(ctx, desired)
	}
	if err != nil {
		return "", err
	}
	return "updated", nil
}

func (r *XTraceReconciler) newObject(like client.Object) (client.Object, error) {
	if u, ok := like.(*unstructured.Unstructured); ok {
		out := &unstructured.Unstructured{}
		out.SetGroupVersionKind(u.GroupVersionKind())
		return out, nil
	}
	gvk, err := apiutil.GVKForObject(like, r.Scheme)
	if err != nil {
		return nil, err
	}
	obj, err := r.Scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	return obj.(client.Object), nil
}

func controlledBy(obj client.Object, x *v1alpha1.XTrace) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.UID == x.UID {
			return true
		}
	}
	return false
}

// merge returns existing with the desired content and everyone else's metadata.
func merge(existing, desired client.Object) client.Object {
	labels := existing.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range desired.GetLabels() {
		labels[k] = v
	}
	annotations := existing.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	for k, v := range desired.GetAnnotations() {
		annotations[k] = v
	}
	out := desired.DeepCopyObject().(client.Object)
	out.SetResourceVersion(existing.GetResourceVersion())
	out.SetUID(existing.GetUID())
	out.SetCreationTimestamp(existing.GetCreationTimestamp())
	out.SetFinalizers(existing.GetFinalizers())
	out.SetLabels(labels)
	out.SetAnnotations(annotations)
	out.SetOwnerReferences(existing.GetOwnerReferences())
	switch o := out.(type) {
	case *appsv1.Deployment:
		old := existing.(*appsv1.Deployment)
		if o.Spec.Replicas == nil { // autoscaled: the HPA owns the count
			o.Spec.Replicas = old.Spec.Replicas
		}
		// Keep template annotations others set (e.g. kubectl rollout restart).
		for k, v := range old.Spec.Template.Annotations {
			if _, ours := o.Spec.Template.Annotations[k]; !ours {
				if o.Spec.Template.Annotations == nil {
					o.Spec.Template.Annotations = map[string]string{}
				}
				o.Spec.Template.Annotations[k] = v
			}
		}
	case *corev1.Service:
		old := existing.(*corev1.Service)
		o.Spec.ClusterIP, o.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
		o.Spec.IPFamilies, o.Spec.IPFamilyPolicy = old.Spec.IPFamilies, old.Spec.IPFamilyPolicy
		o.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
		for i := range o.Spec.Ports {
			for _, p := range old.Spec.Ports {
				if p.Name == o.Spec.Ports[i].Name && o.Spec.Ports[i].NodePort == 0 {
					o.Spec.Ports[i].NodePort = p.NodePort
				}
			}
		}
	}
	return out
}

// deleteIfOwned removes an object the XTrace no longer wants.
func (r *XTraceReconciler) deleteIfOwned(ctx context.Context, x *v1alpha1.XTrace, obj client.Object) (bool, error) {
	err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !controlledBy(obj, x) {
		return false, nil // not ours to delete
	}
	if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return true, nil
}
