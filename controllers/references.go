package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
)

// referenceError: a referenced Secret or key is missing.
type referenceError struct{ reason, msg string }

func (e *referenceError) Error() string { return e.msg }

// consumedSecretKeys are the keys of the user's Secrets that the pods read.
func consumedSecretKeys(x *v1alpha1.XTrace) []v1alpha1.SecretKeyRef {
	var refs []v1alpha1.SecretKeyRef
	db := x.Spec.Database
	for _, ref := range []*v1alpha1.SecretKeyRef{db.URLSecretRef, db.ReadURLSecretRef, db.PasswordSecretRef} {
		if ref != nil {
			refs = append(refs, *ref)
		}
	}
	if name := x.Spec.Auth.ExistingSecret; name != "" {
		refs = append(refs, v1alpha1.SecretKeyRef{Name: name, Key: builders.KeyBearerToken})
	}
	return refs
}

// referencedSecrets lists the Secrets an XTrace's pods consume, the generated
// auth Secret included (the index the Secret watch maps back through).
func referencedSecrets(x *v1alpha1.XTrace) []string {
	names := []string{builders.NamesOf(x).AuthSecret()}
	for _, ref := range consumedSecretKeys(x) {
		if !slices.Contains(names, ref.Name) {
			names = append(names, ref.Name)
		}
	}
	return names
}

// checkReferences verifies that every Secret key the pods consume exists and
// returns the Secrets' resourceVersions (for the config hash). The Secrets are
// read from the API server: the cache holds only their metadata, and knowing
// whether a key exists needs the data. These are a few small reads per reconcile.
func (r *XTraceReconciler) checkReferences(ctx context.Context, x *v1alpha1.XTrace) (map[string]string, error) {
	versions := map[string]string{}
	for _, ref := range consumedSecretKeys(x) {
		s := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: ref.Name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &referenceError{ReasonSecretNotFound, fmt.Sprintf("Secret %s/%s not found", x.Namespace, ref.Name)}
			}
			return nil, err
		}
		if _, ok := s.Data[ref.Key]; !ok {
			return nil, &referenceError{ReasonSecretKeyMissing, fmt.Sprintf("Secret %s/%s has no key %q", x.Namespace, ref.Name, ref.Key)}
		}
		versions[ref.Name] = s.ResourceVersion
	}
	return versions, nil
}

// ensureAuthSecret generates "<name>-auth" once. Its data is never rewritten
// (nor read: its metadata is enough).
func (r *XTraceReconciler) ensureAuthSecret(ctx context.Context, x *v1alpha1.XTrace, versions map[string]string) error {
	if x.Spec.Auth.ExistingSecret != "" {
		return nil
	}
	name := builders.NamesOf(x).GeneratedAuthSecret()
	existing := &metav1.PartialObjectMetadata{}
	existing.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: name}, existing)
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

// xtracesForSecret maps a Secret (its metadata) to the XTraces that consume it.
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
