// Package controllers holds the reconciler of XTrace resources.
package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

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
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// DefaultImage is the server image used when spec.image is empty.
	DefaultImage string
	// Now is the clock of condition transition times; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=observability.xtrace.dev,resources=xtraces,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=observability.xtrace.dev,resources=xtraces/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=observability.xtrace.dev,resources=xtraces/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts;secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;update;patch;delete

// Reconcile is the checklist: fetch → paused? → check references → auth
// Secret → apply objects → delete disabled ones → status from observation.
func (r *XTraceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	x := &v1alpha1.XTrace{}
	if err := r.Get(ctx, req.NamespacedName, x); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	old := x.Status.DeepCopy()
	r.initConditions(x)

	result, stepErr := r.runSteps(ctx, x)
	if err := r.observe(ctx, x); err != nil && stepErr == nil {
		stepErr = err
	}
	if !equality.Semantic.DeepEqual(old, &x.Status) {
		if err := r.Status().Update(ctx, x); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, err
		}
	}
	return result, stepErr
}

func (r *XTraceReconciler) runSteps(ctx context.Context, x *v1alpha1.XTrace) (ctrl.Result, error) {
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
	if err := r.applyObjects(ctx, x, secretVersions); err != nil {
		return r.fail(ctx, x, err)
	}
	if err := r.deleteDisabled(ctx, x); err != nil {
		return r.fail(ctx, x, err)
	}
	r.setCondition(x, ConditionReconciled, metav1.ConditionTrue, ReasonApplied, "all managed objects match the spec")
	return ctrl.Result{}, nil
}

// referenceError: a referenced Secret or key is missing.
type referenceError struct{ reason, msg string }

func (e *referenceError) Error() string { return e.msg }

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

// checkReferences verifies that every Secret key the pods consume exists and
// returns the Secrets' resourceVersions (for the config hash).
func (r *XTraceReconciler) checkReferences(ctx context.Context, x *v1alpha1.XTrace) (map[string]string, error) {
	versions := map[string]string{}
	need := func(name, key string) error {
		s := &corev1.Secret{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return &referenceError{ReasonSecretNotFound, fmt.Sprintf("Secret %s/%s not found", x.Namespace, name)}
			}
			return err
		}
		if _, ok := s.Data[key]; !ok && key != "" {
			return &referenceError{ReasonSecretKeyMissing, fmt.Sprintf("Secret %s/%s has no key %q", x.Namespace, name, key)}
		}
		versions[name] = s.ResourceVersion
		return nil
	}
	db := x.Spec.Database
	if db.URLSecretRef != nil {
		if err := need(db.URLSecretRef.Name, db.URLSecretRef.Key); err != nil {
			return nil, err
		}
	}
	if db.PasswordSecretRef != nil {
		if err := need(db.PasswordSecretRef.Name, db.PasswordSecretRef.Key); err != nil {
			return nil, err
		}
	}
	if name := x.Spec.Auth.ExistingSecret; name != "" {
		if err := need(name, builders.KeyBearerToken); err != nil {
			return nil, err
		}
	}
	return versions, nil
}

// ensureAuthSecret generates "<name>-auth" once. Its data is never rewritten.
func (r *XTraceReconciler) ensureAuthSecret(ctx context.Context, x *v1alpha1.XTrace, versions map[string]string) error {
	if x.Spec.Auth.ExistingSecret != "" {
		return nil
	}
	name := builders.NamesOf(x).GeneratedAuthSecret()
	existing := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: name}, existing)
	if err == nil {
		if !controlledBy(existing, x) {
			return &errConflict{"Secret", name}
		}
		versions[name] = existing.ResourceVersion
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	secret := builders.AuthSecret(x, r.inputs(x, nil), "xt-"+randomHex(32), "pk-xt-"+randomHex(16), "sk-xt-"+randomHex(32))
	if err := ctrlSetOwner(x, secret, r.Scheme); err != nil {
		return err
	}
	if err := r.Create(ctx, secret); err != nil {
		return err
	}
	r.Recorder.Eventf(x, corev1.EventTypeNormal, ReasonCreated, "Generated API credentials in Secret %s", name)
	versions[name] = secret.ResourceVersion
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

func (r *XTraceReconciler) inputs(x *v1alpha1.XTrace, versions map[string]string) builders.Inputs {
	image := x.Spec.Image
	if image == "" {
		image = r.DefaultImage
	}
	return builders.Inputs{Image: image, Version: builders.VersionOf(image), SecretVersions: versions}
}

// applyObjects creates or updates every wanted object.
func (r *XTraceReconciler) applyObjects(ctx context.Context, x *v1alpha1.XTrace, versions map[string]string) error {
	in := r.inputs(x, versions)
	var wanted []client.Object
	add := func(obj client.Object, isNil bool) {
		if !isNil {
			wanted = append(wanted, obj)
		}
	}
	sa := builders.ServiceAccount(x, in)
	add(sa, sa == nil)
	wanted = append(wanted, builders.Deployment(x, in), builders.Service(x, in), builders.RetentionCronJob(x, in))
	pdb := builders.PodDisruptionBudget(x, in)
	add(pdb, pdb == nil)
	hpa := builders.HorizontalPodAutoscaler(x, in)
	add(hpa, hpa == nil)
	np := builders.NetworkPolicy(x, in)
	add(np, np == nil)
	if sm := builders.ServiceMonitor(x, in); sm != nil {
		if r.serviceMonitorCRDInstalled() {
			wanted = append(wanted, sm)
			r.setCondition(x, ConditionServiceMonitor, metav1.ConditionTrue, ReasonApplied, "ServiceMonitor "+sm.GetName()+" applied")
		} else {
			r.setCondition(x, ConditionServiceMonitor, metav1.ConditionFalse, ReasonCRDNotInstalled,
				"spec.serviceMonitor.enabled is true but the monitoring.coreos.com ServiceMonitor CRD is not installed")
		}
	} else {
		meta.RemoveStatusCondition(&x.Status.Conditions, ConditionServiceMonitor)
	}
	for _, obj := range wanted {
		what, err := r.apply(ctx, x, obj)
		if err != nil {
			return fmt.Errorf("apply %T %s: %w", obj, obj.GetName(), err)
		}
		if what != "" {
			r.Recorder.Eventf(x, corev1.EventTypeNormal, "Applied", "%s %s %s", capitalize(what), kindOf(obj), obj.GetName())
		}
	}
	return nil
}

// deleteDisabled removes the optional objects that are no longer wanted.
func (r *XTraceReconciler) deleteDisabled(ctx context.Context, x *v1alpha1.XTrace) error {
	in := r.inputs(x, nil)
	n := builders.NamesOf(x)
	key := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: x.Namespace} }
	var unwanted []client.Object
	if builders.PodDisruptionBudget(x, in) == nil {
		unwanted = append(unwanted, &policyv1.PodDisruptionBudget{ObjectMeta: key(n.PDB())})
	}
	if builders.HorizontalPodAutoscaler(x, in) == nil {
		unwanted = append(unwanted, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: key(n.HPA())})
	}
	if builders.NetworkPolicy(x, in) == nil {
		unwanted = append(unwanted, &networkingv1.NetworkPolicy{ObjectMeta: key(n.NetworkPolicy())})
	}
	if builders.ServiceAccount(x, in) == nil {
		unwanted = append(unwanted, &corev1.ServiceAccount{ObjectMeta: key(x.Name)})
	}
	if builders.ServiceMonitor(x, in) == nil && r.serviceMonitorCRDInstalled() {
		sm := &unstructured.Unstructured{}
		sm.SetGroupVersionKind(serviceMonitorGVK)
		sm.SetName(n.ServiceMonitor())
		sm.SetNamespace(x.Namespace)
		unwanted = append(unwanted, sm)
	}
	for _, obj := range unwanted {
		deleted, err := r.deleteIfOwned(ctx, x, obj)
		if err != nil {
			return fmt.Errorf("delete %T %s: %w", obj, obj.GetName(), err)
		}
		if deleted {
			r.Recorder.Eventf(x, corev1.EventTypeNormal, "Deleted", "Deleted %s %s (no longer wanted)", kindOf(obj), obj.GetName())
		}
	}
	return nil
}

var serviceMonitorGVK = schema.GroupVersionKind{Group: builders.ServiceMonitorGVK.Group, Version: builders.ServiceMonitorGVK.Version, Kind: builders.ServiceMonitorGVK.Kind}

func (r *XTraceReconciler) serviceMonitorCRDInstalled() bool {
	_, err := r.RESTMapper().RESTMapping(serviceMonitorGVK.GroupKind(), serviceMonitorGVK.Version)
	return err == nil
}

// observe rebuilds the status from what the cluster shows.
func (r *XTraceReconciler) observe(ctx context.Context, x *v1alpha1.XTrace) error {
	n := builders.NamesOf(x)
	x.Status.ObservedGeneration = x.Generation
	x.Status.Endpoint = n.Endpoint()
	x.Status.AuthSecretName = n.AuthSecret()
	x.Status.Image = r.inputs(x, nil).Image
	x.Status.Selector = labels.SelectorFromSet(builders.SelectorLabels(x, builders.ComponentServer)).String()

	dep := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: n.Deployment()}, dep)
	switch {
	case apierrors.IsNotFound(err):
		x.Status.Replicas, x.Status.ReadyReplicas = 0, 0
		r.setCondition(x, ConditionAvailable, metav1.ConditionFalse, ReasonNoPodReady, "the Deployment does not exist yet")
	case err != nil:
		return err
	default:
		x.Status.Replicas, x.Status.ReadyReplicas = dep.Status.Replicas, dep.Status.ReadyReplicas
		want := int32(1)
		if dep.Spec.Replicas != nil {
			want = *dep.Spec.Replicas
		}
		ready := dep.Status.ReadyReplicas
		switch {
		case ready == 0 && want > 0:
			r.setCondition(x, ConditionAvailable, metav1.ConditionFalse, ReasonNoPodReady, fmt.Sprintf("0 of %d pods ready", want))
		case ready < want || dep.Status.UpdatedReplicas < want:
			r.setCondition(x, ConditionAvailable, metav1.ConditionTrue, ReasonSomePodsNotReady, fmt.Sprintf("%d of %d pods ready", ready, want))
		default:
			r.setCondition(x, ConditionAvailable, metav1.ConditionTrue, ReasonAllPodsReady, fmt.Sprintf("%d of %d pods ready", ready, want))
		}
	}
	cj := &batchv1.CronJob{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: n.CronJob()}, cj); err == nil {
		x.Status.LastRetentionTime = cj.Status.LastSuccessfulTime
	}

	reconciled := meta.FindStatusCondition(x.Status.Conditions, ConditionReconciled)
	available := meta.FindStatusCondition(x.Status.Conditions, ConditionAvailable)
	switch {
	case reconciled.Status != metav1.ConditionTrue:
		r.setCondition(x, ConditionReady, metav1.ConditionFalse, reconciled.Reason, reconciled.Message)
	case available.Reason != ReasonAllPodsReady:
		r.setCondition(x, ConditionReady, metav1.ConditionFalse, available.Reason, available.Message)
	default:
		r.setCondition(x, ConditionReady, metav1.ConditionTrue, ReasonAllPodsReady, "xtrace is serving at "+x.Status.Endpoint)
	}
	return nil
}

// initConditions sets Unknown conditions on the first reconcile.
func (r *XTraceReconciler) initConditions(x *v1alpha1.XTrace) {
	for _, t := range []string{ConditionReady, ConditionReconciled, ConditionAvailable} {
		if meta.FindStatusCondition(x.Status.Conditions, t) == nil {
			r.setCondition(x, t, metav1.ConditionUnknown, ReasonReconciling, "reconciling")
		}
	}
}

func (r *XTraceReconciler) setCondition(x *v1alpha1.XTrace, typ string, status metav1.ConditionStatus, reason, msg string) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	c := metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: x.Generation,
		LastTransitionTime: metav1.NewTime(now().Truncate(time.Second))}
	if old := meta.FindStatusCondition(x.Status.Conditions, typ); old != nil && old.Status == status {
		c.LastTransitionTime = old.LastTransitionTime // only a status change moves the transition time
	}
	meta.SetStatusCondition(&x.Status.Conditions, c)
}

// SetupWithManager registers the controller and its watches.
func (r *XTraceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.XTrace{}, secretRefsIndex, func(o client.Object) []string {
		return referencedSecrets(o.(*v1alpha1.XTrace))
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.XTrace{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&batchv1.CronJob{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&networkingv1.NetworkPolicy{}).
		// Secrets: the generated one is owned; referenced ones (database, existing auth) map back through the index.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.xtracesForSecret)).
		Complete(r)
}

// referencedSecrets lists the Secrets an XTrace's pods consume.
func referencedSecrets(x *v1alpha1.XTrace) []string {
	var out []string
	if ref := x.Spec.Database.URLSecretRef; ref != nil {
		out = append(out, ref.Name)
	}
	if ref := x.Spec.Database.PasswordSecretRef; ref != nil {
		out = append(out, ref.Name)
	}
	out = append(out, builders.NamesOf(x).AuthSecret())
	return out
}

func (r *XTraceReconciler) xtracesForSecret(ctx context.Context, s client.Object) []reconcile.Request {
	var list v1alpha1.XTraceList
	if err := r.List(ctx, &list, client.InNamespace(s.GetNamespace()), client.MatchingFields{secretRefsIndex: s.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list XTraces for Secret", "secret", s.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, x := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&x)})
	}
	return reqs
}
