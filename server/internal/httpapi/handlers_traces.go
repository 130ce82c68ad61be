package httpapi

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/apierror"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// nativeBatch: POST /v1/l/batch (all-or-nothing; 200 only after commit).
func (a *API) nativeBatch(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	ups, nTraces, nObs, err := traces.ParseNativeBatch(body, a.now())
	if err != nil {
		return err
	}
	if err := a.traceQueue.Submit(r.Context(), ups, len(ups)); err != nil {
		return err
	}
	a.tel.TracesWritten.Add(float64(nTraces))
	a.tel.ObservationsWrote.Add(float64(nObs))
	writeJSON(w, http.StatusOK, map[string]any{"accepted": map[string]int{"traces": nTraces, "observations": nObs}})
	return nil
}

// ingestion: POST /api/public/ingestion (Langfuse): each event on its own; 207.
func (a *API) ingestion(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	ups, successes, failures, err := traces.ParseIngestion(body, a.now())
	if err != nil {
		return err
	}
	if len(ups) > 0 {
		if err := a.traceQueue.Submit(r.Context(), ups, len(ups)); err != nil {
			return err
		}
		for _, u := range ups {
			switch {
			case u.Kind == traces.KindTrace && u.Stamp != traces.Placeholder:
				a.tel.TracesWritten.Inc()
			case u.Kind == traces.KindObservation:
				a.tel.ObservationsWrote.Inc()
			}
		}
	}
	writeJSON(w, http.StatusMultiStatus, map[string]any{"successes": successes, "errors": failures})
	return nil
}

// listParams reads page/limit (Langfuse paging).
func listParams(q url.Values) (store.Page, error) {
	p := store.Page{Page: 1, Limit: 50}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, apierror.BadRequest("page: %q is not an integer ≥ 1", v)
		}
		p.Page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, apierror.BadRequest("limit: %q is not an integer from 1 to 100", v)
		}
		p.Limit = n
	}
	return p, nil
}

func optTime(q url.Values, name string) (*time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, apierror.BadRequest("%s: %q is not ISO 8601 with an offset", name, v)
	}
	return &t, nil
}

// multi accepts repeated keys and comma-joined values (both are sent by SDKs).
func multi(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

type listMeta struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	TotalItems int `json:"totalItems"`
	TotalPages int `json:"totalPages"`
}

func meta(p store.Page, total int) listMeta {
	return listMeta{Page: p.Page, Limit: p.Limit, TotalItems: total, TotalPages: int(math.Ceil(float64(total) / float64(p.Limit)))}
}

func (a *API) listTraces(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, err := listParams(q)
	if err != nil {
		return err
	}
	f := store.TraceFilter{Page: page, UserID: q.Get("userId"), Name: q.Get("name"), SessionID: q.Get("sessionId"),
		Version: q.Get("version"), Release: q.Get("release"), Environment: q.Get("environment"), Tags: multi(q, "tags"),
		OrderBy: "timestamp", Desc: true}
	if f.From, err = optTime(q, "fromTimestamp"); err != nil {
		return err
	}
	if f.To, err = optTime(q, "toTimestamp"); err != nil {
		return err
	}
	if v := q.Get("orderBy"); v != "" {
		col, dir, _ := strings.Cut(v, ".")
		if _, ok := store.TraceOrderColumns[col]; !ok || (dir != "asc" && dir != "desc" && dir != "") {
			return apierror.BadRequest("orderBy: %q is not field.asc or field.desc with field one of timestamp, name, userId, sessionId, release, version, environment, createdAt, updatedAt, id", v)
		}
		f.OrderBy, f.Desc = col, dir != "asc"
	}
	rows, total, err := a.store.ListTraces(r.Context(), a.cfg.DefaultProjectID, f)
	if err != nil {
		return err
	}
	data := make([]map[string]any, 0, len(rows))
	for i := range rows {
		data = append(data, a.traceView(&rows[i], nil, nil, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta(page, total)})
	return nil
}

func (a *API) getTrace(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("traceId")
	t, obs, scores, err := a.store.GetTrace(r.Context(), a.cfg.DefaultProjectID, id)
	if errors.Is(err, apierror.ErrNotFound) {
		return apierror.NotFound("trace %s not found", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.traceView(t, obs, scores, true))
	return nil
}

func (a *API) listObservations(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, err := listParams(q)
	if err != nil {
		return err
	}
	f := store.ObservationFilter{Page: page, TraceID: q.Get("traceId"), Name: q.Get("name"), Type: q.Get("type"),
		UserID: q.Get("userId"), ParentObservationID: q.Get("parentObservationId"), Environment: q.Get("environment"),
		Version: q.Get("version")}
	if f.FromStartTime, err = optTime(q, "fromStartTime"); err != nil {
		return err
	}
	if f.ToStartTime, err = optTime(q, "toStartTime"); err != nil {
		return err
	}
	rows, total, err := a.store.ListObservations(r.Context(), a.cfg.DefaultProjectID, f)
	if err != nil {
		return err
	}
	data := make([]map[string]any, 0, len(rows))
	for i := range rows {
		data = append(data, a.observationView(&rows[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta(page, total)})
	return nil
}

func (a *API) getObservation(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("observationId")
	o, err := a.store.GetObservation(r.Context(), a.cfg.DefaultProjectID, id)
	if errors.Is(err, apierror.ErrNotFound) {
		return apierror.NotFound("observation %s not found", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.observationView(o))
	return nil
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, err := listParams(q)
	if err != nil {
		return err
	}
	from, err := optTime(q, "fromTimestamp")
	if err != nil {
		return err
	}
	to, err := optTime(q, "toTimestamp")
	if err != nil {
		return err
	}
	rows, total, err := a.store.ListSessions(r.Context(), a.cfg.DefaultProjectID, from, to, page)
	if err != nil {
		return err
	}
	data := make([]map[string]any, 0, len(rows))
	for _, s := range rows {
		data = append(data, map[string]any{"id": s.ID, "createdAt": fmtTime(s.CreatedAt), "projectId": a.cfg.DefaultProjectID, "environment": s.Environment})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta(page, total)})
	return nil
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sessionId")
	s, trs, err := a.store.GetSession(r.Context(), a.cfg.DefaultProjectID, id)
	if errors.Is(err, apierror.ErrNotFound) {
		return apierror.NotFound("session %s not found", id)
	}
	if err != nil {
		return err
	}
	list := make([]map[string]any, 0, len(trs))
	for i := range trs {
		list = append(list, a.traceView(&trs[i], nil, nil, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": s.ID, "createdAt": fmtTime(s.CreatedAt), "projectId": a.cfg.DefaultProjectID,
		"environment": s.Environment, "traces": list})
	return nil
}

func (a *API) dailyMetrics(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, err := listParams(q)
	if err != nil {
		return err
	}
	f := store.DailyFilter{Page: page, TraceName: q.Get("traceName"), UserID: q.Get("userId"), Tags: multi(q, "tags")}
	if f.From, err = optTime(q, "fromTimestamp"); err != nil {
		return err
	}
	if f.To, err = optTime(q, "toTimestamp"); err != nil {
		return err
	}
	rows, total, err := a.store.DailyMetrics(r.Context(), a.cfg.DefaultProjectID, f)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []store.DailyRow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": rows, "meta": meta(page, total)})
	return nil
}

func (a *API) projects(w http.ResponseWriter, _ *http.Request) error {
	id := a.cfg.DefaultProjectID
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{{
		"id": id, "name": id, "metadata": map[string]any{}, "organization": map[string]any{"id": "xtrace", "name": "xtrace"},
	}}})
	return nil
}
