package builders

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
)

func secretEnv(name, secret, key string, optional bool) corev1.EnvVar {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}
	if optional {
		ref.Optional = ptr.To(true)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
}

func plainEnv(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }

// DatabaseEnv is the connection settings of the primary, which every
// container needs: DATABASE_URL from a Secret, or the libpq PG* variables with
// the password from a Secret. Secret values never appear literally.
func DatabaseEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	db := x.Spec.Database
	var env []corev1.EnvVar
	if db.URLSecretRef != nil {
		env = append(env, secretEnv("DATABASE_URL", db.URLSecretRef.Name, db.URLSecretRef.Key, false))
	} else {
		env = append(env, plainEnv("PGHOST", db.Host), plainEnv("PGPORT", strconv.Itoa(int(db.PortOrDefault()))),
			plainEnv("PGDATABASE", db.DBName), plainEnv("PGUSER", db.User))
		if db.PasswordSecretRef != nil {
			env = append(env, secretEnv("PGPASSWORD", db.PasswordSecretRef.Name, db.PasswordSecretRef.Key, false))
		}
		if db.SSLMode != "" {
			env = append(env, plainEnv("PGSSLMODE", db.SSLMode))
		}
	}
	return append(env, plainEnv("XTRACE_DB_MAX_CONNS", strconv.Itoa(int(db.MaxConnectionsOrDefault()))))
}

// ReadReplicaEnv is where the server sends read-only queries: DATABASE_READ_URL
// from a Secret, or DATABASE_READ_HOST (the primary's settings with another
// host). Only the server reads from replicas; the retention job does not.
func ReadReplicaEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	db := x.Spec.Database
	switch {
	case db.ReadURLSecretRef != nil:
		return []corev1.EnvVar{secretEnv("DATABASE_READ_URL", db.ReadURLSecretRef.Name, db.ReadURLSecretRef.Key, false)}
	case db.ReadHost != "":
		return []corev1.EnvVar{plainEnv("DATABASE_READ_HOST", db.ReadHost)}
	}
	return nil
}

// metricsRetentionEnv is the metric points' window, read by the retention job
// (what to prune) and by the server (what to accept).
func metricsRetentionEnv(x *v1alpha1.XTrace) corev1.EnvVar {
	return plainEnv("METRICS_RETENTION_DAYS", strconv.Itoa(int(x.Spec.Retention.MetricsDaysOrDefault())))
}

// RetentionJobEnv is what "xtrace retention" needs besides the database.
func RetentionJobEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	return []corev1.EnvVar{
		metricsRetentionEnv(x),
		plainEnv("TRACES_RETENTION_DAYS", strconv.Itoa(int(x.Spec.Retention.TracesDaysOrDefault()))),
		plainEnv("XTRACE_LOG_FORMAT", "json"),
	}
}

// ServerEnv is the server container's environment. Of spec.retention only
// metricsDays is here: the server refuses points older than that window. The
// rest (tracesDays, schedule, suspend) is the CronJob's business; the server's
// own pruning is off (XTRACE_RETENTION_INTERVAL=0), so putting them here would
// only restart the pods through the config hash when they change.
func ServerEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	auth := NamesOf(x).AuthSecret()
	spec := &x.Spec
	env := DatabaseEnv(x)
	env = append(env, ReadReplicaEnv(x)...)
	env = append(env,
		secretEnv("API_BEARER_TOKEN", auth, KeyBearerToken, false),
		secretEnv("XTRACE_PUBLIC_KEY", auth, KeyPublicKey, true),
		secretEnv("XTRACE_SECRET_KEY", auth, KeySecretKey, true),
		plainEnv("BIND_ADDR", "0.0.0.0:"+strconv.Itoa(int(spec.Service.PortOrDefault()))),
		plainEnv("DEFAULT_PROJECT_ID", spec.DefaultProjectIDOrDefault()),
		plainEnv("RATE_LIMIT_QPS", strconv.FormatFloat(spec.RateLimit.QPSOrDefault(), 'f', -1, 64)),
		plainEnv("RATE_LIMIT_BURST", strconv.Itoa(int(spec.RateLimit.BurstOrDefault()))),
		metricsRetentionEnv(x),
		plainEnv("XTRACE_RETENTION_INTERVAL", "0"),
		plainEnv("XTRACE_LOG_FORMAT", "json"),
	)
	return append(env, spec.ExtraEnv...)
}

// restrictedContainerSecurity is the "restricted" Pod Security Standard.
func restrictedContainerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func restrictedPodSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](65532),
		RunAsGroup:     ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}
