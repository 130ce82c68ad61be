package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/version"
)

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz is 200 while Postgres answers and the server is not shutting down.
// With read replicas, a server whose primary is down stays ready while a
// replica serves reads: queries keep answering and writes get 503 (which
// clients retry), rather than every request failing for want of a ready pod.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	if a.shuttingDown.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": "shutting down"})
		return nil
	}
	if !a.schemaReady.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": "schema migrations not applied yet"})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		if a.store.ReplicaServing() {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "primary": "unavailable: reads are served by read replicas, writes get 503"})
			return nil
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": "database unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// publicHealth is what Langfuse SDKs call: 200 with the version, 503 when the database is down.
func (a *API) publicHealth(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return errs.Unavailablef(err, "database unavailable; retry shortly")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK", "version": version.Version})
	return nil
}
