// Package controllers holds the reconciler of XTrace resources.
package controllers

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// Condition types and reasons of XTrace.status.conditions.
const (
	ConditionReady          = "Ready"
	ConditionReconciled     = "Reconciled"
	ConditionAvailable      = "Available"
	ConditionServiceMonitor = "ServiceMonitor"

	ReasonReconciling      = "Reconciling"
	ReasonApplied          = "Applied"
	ReasonPaused           = "Paused"
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonSecretKeyMissing = "SecretKeyNotFound"
	ReasonConflict         = "ResourceConflict"
	ReasonApplyFailed      = "ApplyFailed"
	ReasonNoPodReady       = "NoPodReady"
	ReasonSomePodsNotReady = "SomePodsNotReady"
	ReasonAllPodsReady     = "AllPodsReady"
	ReasonCRDNotInstalled  = "CRDNotInstalled"
	ReasonCreated          = "Created"
	ReasonNotRequested     = "NotRequested"
)

// secretRefsIndex indexes XTraces by the Secrets they reference, so a Secret change reconciles them.
const secretRefsIndex = "spec.secretRefs"

// referenceRetry is how soon a reconcile waiting for a missing Secret runs again
// (creating the Secret triggers one at once through the watch).
const referenceRetry = 30 * time.Second

// XTraceReconciler reconciles XTrace objects.
type XTraceReconciler struct {
	client.Client
	// APIReader reads Secrets from the API server: the manager caches only
	// their metadata (see NarrowCaching). Nil: the manager's API reader.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  record.EventRecorder
	// DefaultImage is the server image used when spec.image is empty.
	DefaultImage string
	// Now is the clock of condition transition times; nil means time.Now.
	Now func() time.Time
}

// The RBAC of the managed kinds and Secrets sits with their table in kinds.go.
// +kubebuilder:rbac:groups=observability.xtrace.dev,resources=xtraces,verbs=get;list;watch
// +kubebuilder:rbac:groups=observability.xtrace.dev,resources=xtraces/status,verbs=patch
// +kubebuilder:rbac:groups=observability.xtrace.dev,resources=xtraces/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile is the checklist: fetch → reconcile the spec (unless paused) →
// observe what runs → patch the status.
func (r *XTraceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	x := &v1alpha1.XTrace{}
	if err := r.Get(ctx, req.NamespacedName, x); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	fetched := x.DeepCopy()
	r.initConditions(x)

	result, err := r.reconcileSpec(ctx, x)
	if observeErr := r.observe(ctx, x); err == nil {
		err = observeErr
	}
	if patchErr := r.patchStatus(ctx, fetched, x); err == nil {
		err = patchErr
	}
	return result, err
}

// reconcileSpec makes the cluster match the spec: check the referenced
// Secrets → the auth Secret → apply the wanted objects → delete the unwanted.
func (r *XTraceReconciler) reconcileSpec(ctx context.Context, x *v1alpha1.XTrace) (ctrl.Result, error) {
	if x.Spec.Paused {
		r.setCondition(x, ConditionReconciled, metav1.ConditionFalse, ReasonPaused, "spec.paused is true: changes are not applied")
		return ctrl.Result{}, nil
	}
	secretVersions, err := r.checkReferences(ctx, x)
	if err != nil {
		return r.fail(ctx, x, err)
	}
	if err := r.ensureAuthSecret(ctx, x, secretVersions); err != nil {
		return r.fail(ctx, x, err)
	}
	applied, err := r.applyObjects(ctx, x, r.inputs(x, secretVersions))
	if err != nil {
		return r.fail(ctx, x, err)
	}
	if err := r.deleteUnwanted(ctx, x, applied); err != nil {
		return r.fail(ctx, x, err)
	}
	r.setCondition(x, ConditionReconciled, metav1.ConditionTrue, ReasonApplied, "all managed objects match the spec")
	return ctrl.Result{}, nil
}

// fail records a failed step on the conditions and as an Event.
func (r *XTraceReconciler) fail(ctx context.Context, x *v1alpha1.XTrace, err error) (ctrl.Result, error) {
	var refErr *referenceError
	var conflict *errConflict
	switch {
	case errors.As(err, &refErr):
		r.setCondition(x, ConditionReconciled, metav1.ConditionFalse, refErr.reason, refErr.msg)
		r.Recorder.Event(x, corev1.EventTypeWarning, refErr.reason, refErr.msg)
		return ctrl.Result{RequeueAfter: referenceRetry}, nil
	case errors.As(err, &conflict):
		r.setCondition(x, ConditionReconciled, metav1.ConditionFalse, ReasonConflict, conflict.Error())
		r.Recorder.Event(x, corev1.EventTypeWarning, ReasonConflict, conflict.Error())
		return ctrl.Result{RequeueAfter: referenceRetry}, nil
	default:
		r.setCondition(x, ConditionReconciled, metav1.ConditionFalse, ReasonApplyFailed, err.Error())
		r.Recorder.Event(x, corev1.EventTypeWarning, ReasonApplyFailed, err.Error())
		log.FromContext(ctx).Error(err, "reconcile step failed")
		return ctrl.Result{}, err
	}
}

func (r *XTraceReconciler) inputs(x *v1alpha1.XTrace, versions map[string]string) builders.Inputs {
	image := x.Spec.Image
	if image == "" {
		image = r.DefaultImage
	}
	return builders.Inputs{Image: image, Version: builders.VersionOf(image), SecretVersions: versions}
}

// SetupWithManager registers the controller and its watches: the XTraces,
// every managed kind it owns, and Secrets by metadata only (the referenced
// ones map back through an index; the generated auth Secret is among them).
func (r *XTraceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.XTrace{}, secretRefsIndex, func(o client.Object) []string {
		return referencedSecrets(o.(*v1alpha1.XTrace))
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).For(&v1alpha1.XTrace{})
	for _, k := range managedKinds {
		if k.watched() {
			b = b.Owns(k.empty())
		}
	}
	return b.WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.xtracesForSecret)).
		Complete(r)
}
