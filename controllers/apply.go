package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
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

// wantedSet names the objects the builders produced, per kind.
type wantedSet map[string]bool

func (w wantedSet) add(k managedKind, name string)      { w[k.resource+"/"+name] = true }
func (w wantedSet) has(k managedKind, name string) bool { return w[k.resource+"/"+name] }

// applyObjects creates or updates every object the builders want and returns
// their names.
func (r *XTraceReconciler) applyObjects(ctx context.Context, x *v1alpha1.XTrace, in builders.Inputs) (wantedSet, error) {
	wanted := wantedSet{}
	for _, k := range managedKinds {
		desired := k.build(x, in)
		if desired == nil {
			if k.conditionType != "" {
				meta.RemoveStatusCondition(&x.Status.Conditions, k.conditionType)
			}
			continue
		}
		if !r.apiInstalled(k) {
			r.setCondition(x, k.conditionType, metav1.ConditionFalse, ReasonCRDNotInstalled,
				fmt.Sprintf("a %s is requested but its CRD (%s) is not installed", kindOf(desired), k.group))
			continue
		}
		wanted.add(k, desired.GetName())
		what, err := r.apply(ctx, x, desired)
		if err != nil {
			return nil, fmt.Errorf("apply %s %s: %w", kindOf(desired), desired.GetName(), err)
		}
		if what != "" {
			r.Recorder.Eventf(x, corev1.EventTypeNormal, "Applied", "%s %s %s", capitalize(what), kindOf(desired), desired.GetName())
		}
		if k.conditionType != "" {
			r.setCondition(x, k.conditionType, metav1.ConditionTrue, ReasonApplied, kindOf(desired)+" "+desired.GetName()+" applied")
		}
	}
	return wanted, nil
}

// deleteUnwanted deletes what this XTrace owns that no builder produced this
// time (a feature turned off, a service account now the user's): the owned
// objects are listed by the instance labels, and only those this XTrace
// controls are deleted.
func (r *XTraceReconciler) deleteUnwanted(ctx context.Context, x *v1alpha1.XTrace, wanted wantedSet) error {
	for _, k := range managedKinds {
		if !r.apiInstalled(k) {
			continue
		}
		list := k.emptyList()
		if err := r.List(ctx, list, client.InNamespace(x.Namespace), client.MatchingLabels(builders.InstanceLabels(x))); err != nil {
			return fmt.Errorf("list %s: %w", k.resource, err)
		}
		err := meta.EachListItem(list, func(item runtime.Object) error {
			obj := item.(client.Object)
			if wanted.has(k, obj.GetName()) || !controlledBy(obj, x) {
				return nil
			}
			if err := r.Delete(ctx, obj); err != nil {
				return client.IgnoreNotFound(err)
			}
			r.Recorder.Eventf(x, corev1.EventTypeNormal, "Deleted", "Deleted %s %s (no longer wanted)", kindOf(k.empty()), obj.GetName())
			return nil
		})
		if err != nil {
			return fmt.Errorf("delete unwanted %s: %w", k.resource, err)
		}
	}
	return nil
}

// apiInstalled reports whether the kind's API is served (always, for the kinds
// that are not optional).
func (r *XTraceReconciler) apiInstalled(k managedKind) bool {
	if k.watched() {
		return true
	}
	gvk := k.empty().GetObjectKind().GroupVersionKind()
	_, err := r.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err == nil
}

// apply creates desired if missing, or updates it when what the operator
// wants changed (tracked by a hash annotation, so defaults the API server
// fills in never cause writes). Labels and annotations other actors added
// are kept. It returns "created", "updated", "recreated" or "" (no write).
func (r *XTraceReconciler) apply(ctx context.Context, x *v1alpha1.XTrace, desired client.Object) (string, error) {
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

	existing, err := r.current(ctx, desired)
	if err != nil {
		return "", err
	}
	if existing == nil {
		return "created", r.Create(ctx, desired)
	}
	if !controlledBy(existing, x) {
		return "", &errConflict{kindOf(desired), desired.GetName()}
	}
	if existing.GetAnnotations()[builders.SpecHashAnnotation] == hash {
		return "", nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), existing); err != nil {
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

// current returns the object named like desired, or nil when there is none.
// The cache holds only objects carrying the operator's labels; one that lost
// them is read from the API server (which is how the update puts them back).
func (r *XTraceReconciler) current(ctx context.Context, desired client.Object) (client.Object, error) {
	existing, err := r.newObject(desired)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(desired)
	err = r.Get(ctx, key, existing)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, existing)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return existing, err
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
	out := desired.DeepCopyObject().(client.Object)
	out.SetResourceVersion(existing.GetResourceVersion())
	out.SetUID(existing.GetUID())
	out.SetCreationTimestamp(existing.GetCreationTimestamp())
	out.SetFinalizers(existing.GetFinalizers())
	out.SetLabels(union(existing.GetLabels(), desired.GetLabels()))
	out.SetAnnotations(union(existing.GetAnnotations(), desired.GetAnnotations()))
	out.SetOwnerReferences(existing.GetOwnerReferences())
	keepOthersFields(existing, out)
	return out
}

// union is base with over's entries on top.
func union(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// keepOthersFields copies into out the fields of existing that other actors
// own: the HPA's replica count, template annotations such as kubectl rollout
// restart's, and what the API server allocated for a Service.
func keepOthersFields(existing, out client.Object) {
	switch o := out.(type) {
	case *appsv1.Deployment:
		old := existing.(*appsv1.Deployment)
		if o.Spec.Replicas == nil { // autoscaled: the HPA owns the count
			o.Spec.Replicas = old.Spec.Replicas
		}
		o.Spec.Template.Annotations = union(old.Spec.Template.Annotations, o.Spec.Template.Annotations)
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
}
