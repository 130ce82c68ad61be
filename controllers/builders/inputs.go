package builders

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
)

// Inputs are what the builders need besides the XTrace.
type Inputs struct {
	// Image is the server image (spec.image or the operator's default).
	Image string
	// Version labels the objects (app.kubernetes.io/version), from the image tag.
	Version string
	// SecretVersions maps each Secret the pods consume to its resourceVersion,
	// so that a rotated Secret changes the config hash and rolls the pods.
	SecretVersions map[string]string
}

// Hash is a short stable hash of any JSON-encodable value.
func Hash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// secretVersionsKey renders SecretVersions as "Secret/name=rv" lines, sorted.
func secretVersionsKey(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for name, rv := range m {
		lines = append(lines, "Secret/"+name+"="+rv)
	}
	sort.Strings(lines)
	return strings.Join(lines, ",")
}

// VersionOf returns the tag of an image reference ("" for digests or no tag).
func VersionOf(image string) string {
	if i := strings.LastIndex(image, "@"); i >= 0 {
		return ""
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		tag := image[i+1:]
		if len(tag) > 63 {
			tag = tag[:63]
		}
		return tag
	}
	return ""
}
