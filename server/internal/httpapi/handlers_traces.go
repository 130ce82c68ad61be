package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// nativeBatch: POST /v1/l/batch (all-or-nothing; 200 only after commit).
func (a *API) nativeBatch(w http.ResponseWriter, r *http.Request) error {
	body, err := a.readBody(r)
	if err != nil {
		return err
	}
	ups, nTraces, nObs, err := traces.ParseNativeBatch(body, a.now())
	if err != nil {
		return err
	}
	if err := a.submitTraces(r.Context(), ups); err != nil {
		return err
	}
	a.tel.TracesWritten.Add(float64(nTraces))
	a.tel.ObservationsWrote.Add(float64(nObs))
	// What writeJSON would write, without its reflection: this answers every gateway request.
	writeJSONBytes(w, http.StatusOK, fmt.Appendf(nil, "{\"accepted\":{\"observations\":%d,\"traces\":%d}}\n", nObs, nTraces))
	return nil
}

// ingestion: POST /api/public/ingestion (Langfuse): each event on its own; 207.
func (a *API) ingestion(w http.ResponseWriter, r *http.Request) error {
	body, err := a.readBody(r)
	if err != nil {
		return err
	}
	ups, successes, failures, err := traces.ParseIngestion(body, a.now())
	if err != nil {
		return err
	}
	if len(ups) > 0 {
		if err := a.submitTraces(r.Context(), ups); err != nil {
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
	f, err := traceFilter(r.URL.Query())
	if err != nil {
		return err
	}
	rows, total, err := a.store.ListTraces(r.Context(), a.cfg.DefaultProjectID, f)
	if err != nil {
		return err
	}
	data := make([]map[string]any, 0, len(rows))
	for i := range rows {
		data = append(data, a.traceView(&rows[i], nil, nil, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta(f.Page, total)})
	return nil
}

func (a *API) getTrace(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "traceId")
	if err != nil {
		return err
	}
	t, obs, scores, err := a.store.GetTrace(r.Context(), a.cfg.DefaultProjectID, id)
	if errs.KindOf(err) == errs.NotFound {
		return errs.NotFoundf("trace %s not found", clip(id, 100))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.traceView(t, obs, scores, true))
	return nil
}

func (a *API) listObservations(w http.ResponseWriter, r *http.Request) error {
	f, err := observationFilter(r.URL.Query())
	if err != nil {
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
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta(f.Page, total)})
	return nil
}

func (a *API) getObservation(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "observationId")
	if err != nil {
		return err
	}
	o, err := a.store.GetObservation(r.Context(), a.cfg.DefaultProjectID, id)
	if errs.KindOf(err) == errs.NotFound {
		return errs.NotFoundf("observation %s not found", clip(id, 100))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.observationView(o))
	return nil
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) error {
	f, err := sessionFilter(r.URL.Query())
	if err != nil {
		return err
	}
	rows, total, err := a.store.ListSessions(r.Context(), a.cfg.DefaultProjectID, f)
	if err != nil {
		return err
	}
	data := make([]map[string]any, 0, len(rows))
	for _, s := range rows {
		data = append(data, map[string]any{"id": s.ID, "createdAt": fmtTime(s.CreatedAt), "projectId": a.cfg.DefaultProjectID, "environment": s.Environment})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta(f.Page, total)})
	return nil
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "sessionId")
	if err != nil {
		return err
	}
	s, trs, err := a.store.GetSession(r.Context(), a.cfg.DefaultProjectID, id)
	if errs.KindOf(err) == errs.NotFound {
		return errs.NotFoundf("session %s not found", clip(id, 100))
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
	f, err := dailyFilter(r.URL.Query())
	if err != nil {
		return err
	}
	rows, total, err := a.store.DailyMetrics(r.Context(), a.cfg.DefaultProjectID, f)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []store.DailyRow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": rows, "meta": meta(f.Page, total)})
	return nil
}

func (a *API) projects(w http.ResponseWriter, _ *http.Request) error {
	id := a.cfg.DefaultProjectID
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{{
		"id": id, "name": id, "metadata": map[string]any{}, "organization": map[string]any{"id": "xtrace", "name": "xtrace"},
	}}})
	return nil
}

// submitTraces queues upserts for the trace writer, their rows built here on
// the request's time, and waits for the commit.
func (a *API) submitTraces(ctx context.Context, ups []traces.Upsert) error {
	w := store.PrepareTraceWrite(ups)
	return a.traceQueue.Submit(ctx, []*store.TraceWrite{w}, w.Upserts())
}
