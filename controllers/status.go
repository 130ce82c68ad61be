package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// observe rebuilds the status from what the cluster shows.
func (r *XTraceReconciler) observe(ctx context.Context, x *v1alpha1.XTrace) error {
	n := builders.NamesOf(x)
	x.Status.ObservedGeneration = x.Generation
	x.Status.Endpoint = n.Endpoint()
	x.Status.RemoteWriteURL = n.RemoteWriteURL()
	x.Status.AuthSecretName = n.AuthSecret()
	x.Status.Image = r.inputs(x, nil).Image
	x.Status.Selector = labels.SelectorFromSet(builders.SelectorLabels(x, builders.ComponentServer)).String()
	if err := r.observeDeployment(ctx, x); err != nil {
		return err
	}
	cj := &batchv1.CronJob{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: n.CronJob()}, cj); err == nil {
		x.Status.LastRetentionTime = cj.Status.LastSuccessfulTime
	}
	r.summarizeReady(x)
	return nil
}

// observeDeployment sets the replica counts and the Available condition.
func (r *XTraceReconciler) observeDeployment(ctx context.Context, x *v1alpha1.XTrace) error {
	dep := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: builders.NamesOf(x).Deployment()}, dep)
	if apierrors.IsNotFound(err) {
		x.Status.Replicas, x.Status.ReadyReplicas = 0, 0
		r.setCondition(x, ConditionAvailable, metav1.ConditionFalse, ReasonNoPodReady, "the Deployment does not exist yet")
		return nil
	}
	if err != nil {
		return err
	}
	x.Status.Replicas, x.Status.ReadyReplicas = dep.Status.Replicas, dep.Status.ReadyReplicas
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	ready := dep.Status.ReadyReplicas
	msg := fmt.Sprintf("%d of %d pods ready", ready, want)
	switch {
	case ready == 0 && want > 0:
		r.setCondition(x, ConditionAvailable, metav1.ConditionFalse, ReasonNoPodReady, msg)
	case ready < want || dep.Status.UpdatedReplicas < want:
		r.setCondition(x, ConditionAvailable, metav1.ConditionTrue, ReasonSomePodsNotReady, msg)
	default:
		r.setCondition(x, ConditionAvailable, metav1.ConditionTrue, ReasonAllPodsReady, msg)
	}
	return nil
}

// summarizeReady sets Ready from Reconciled and Available.
func (r *XTraceReconciler) summarizeReady(x *v1alpha1.XTrace) {
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
}

// patchStatus writes the status as a merge patch against the object as
// fetched: it carries no resourceVersion, so it never conflicts with other
// writers of the XTrace (the status has one writer: this controller), and it
// sends only what changed. Nothing changed: no write.
func (r *XTraceReconciler) patchStatus(ctx context.Context, fetched, x *v1alpha1.XTrace) error {
	if equality.Semantic.DeepEqual(fetched.Status, x.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.Status().Patch(ctx, x, client.MergeFrom(fetched)))
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
