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

// DatabaseEnv is the connection settings: DATABASE_URL from a Secret, or the
// libpq PG* variables with the password from a Secret. Secret values never
// appear literally.
func DatabaseEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	db := x.Spec.Database
	maxConns := db.MaxConnections
	if maxConns == 0 {
		maxConns = 20
	}
	var env []corev1.EnvVar
	if db.URLSecretRef != nil {
		env = append(env, secretEnv("DATABASE_URL", db.URLSecretRef.Name, db.URLSecretRef.Key, false))
	} else {
		portNum := db.Port
		if portNum == 0 {
			portNum = 5432
		}
		env = append(env, plainEnv("PGHOST", db.Host), plainEnv("PGPORT", strconv.Itoa(int(portNum))),
			plainEnv("PGDATABASE", db.DBName), plainEnv("PGUSER", db.User))
		if db.PasswordSecretRef != nil {
			env = append(env, secretEnv("PGPASSWORD", db.PasswordSecretRef.Name, db.PasswordSecretRef.Key, false))
		}
		if db.SSLMode != "" {
			env = append(env, plainEnv("PGSSLMODE", db.SSLMode))
		}
	}
	env = append(env, plainEnv("XTRACE_DB_MAX_CONNS", strconv.Itoa(int(maxConns))))
	return env
}

// RetentionEnv is the retention settings (the server's in-process pruning is off: the CronJob prunes).
func RetentionEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	r := x.Spec.Retention
	metricsDays, tracesDays := r.MetricsDays, r.TracesDays
	if metricsDays == 0 {
		metricsDays = 30
	}
	if tracesDays == 0 {
		tracesDays = 90
	}
	return []corev1.EnvVar{
		plainEnv("METRICS_RETENTION_DAYS", strconv.Itoa(int(metricsDays))),
		plainEnv("TRACES_RETENTION_DAYS", strconv.Itoa(int(tracesDays))),
		plainEnv("XTRACE_RETENTION_INTERVAL", "0"),
	}
}

// ServerEnv is the server container's environment.
func ServerEnv(x *v1alpha1.XTrace) []corev1.EnvVar {
	auth := NamesOf(x).AuthSecret()
	qps, burst := x.Spec.RateLimit.QPS, x.Spec.RateLimit.Burst
	if qps == 0 {
		qps = 20
	}
	if burst == 0 {
		burst = 40
	}
	project := x.Spec.DefaultProjectID
	if project == "" {
		project = "default"
	}
	env := DatabaseEnv(x)
	env = append(env,
		secretEnv("API_BEARER_TOKEN", auth, KeyBearerToken, false),
		secretEnv("XTRACE_PUBLIC_KEY", auth, KeyPublicKey, true),
		secretEnv("XTRACE_SECRET_KEY", auth, KeySecretKey, true),
		plainEnv("BIND_ADDR", "0.0.0.0:"+strconv.Itoa(int(port(x)))),
		plainEnv("DEFAULT_PROJECT_ID", project),
		plainEnv("RATE_LIMIT_QPS", strconv.FormatFloat(qps, 'f', -1, 64)),
		plainEnv("RATE_LIMIT_BURST", strconv.Itoa(int(burst))),
		plainEnv("XTRACE_LOG_FORMAT", "json"),
	)
	env = append(env, RetentionEnv(x)...)
	return append(env, x.Spec.ExtraEnv...)
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
