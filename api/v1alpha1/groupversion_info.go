// Package v1alpha1 contains the API types of the observability.xtrace.dev group.
// +kubebuilder:object:generate=true
// +groupName=observability.xtrace.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the XTrace API.
	GroupVersion = schema.GroupVersion{Group: "observability.xtrace.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this group version.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
