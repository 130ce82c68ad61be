// Package version holds the build's version, set with
// -ldflags "-X github.com/xtrace-dev/xtrace-operator/server/internal/version.Version=v1.2.3".
package version

// Version of this build; "dev" for local builds.
var Version = "dev"
