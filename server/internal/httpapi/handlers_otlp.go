package httpapi

import (
	"mime"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/otlp"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// otlpTraces: POST /api/public/otel/v1/traces and /v1/traces (OTLP/HTTP,
// protobuf or JSON, optionally gzip). Spans go through the trace write path;
// the answer comes after commit, in the request's encoding.
func (a *API) otlpTraces(w http.ResponseWriter, r *http.Request) error {
	protobuf, err := otlpProtobuf(r)
	if err != nil {
		return err
	}
	decode := otlp.DecodeJSON
	if protobuf {
		decode = otlp.DecodeProtobuf
	}
	body, err := a.readBody(r)
	if err != nil {
		return err
	}
	spans, err := decode(body)
	if err != nil {
		return errs.InvalidField("body", "%v", err)
	}
	if len(spans) > traces.MaxBatchEvents {
		return errs.TooLargef("resourceSpans", "%d spans in one request, at most %d; export smaller batches", len(spans), traces.MaxBatchEvents)
	}
	res := otlp.ToUpserts(spans)
	if res.Accepted == 0 && res.Rejected > 0 {
		return errs.InvalidField("resourceSpans", "no valid span: %s", res.Problem)
	}
	if len(res.Upserts) > 0 {
		if err := a.submitTraces(r.Context(), res.Upserts); err != nil {
			return err
		}
		a.tel.ObservationsWrote.Add(float64(res.Accepted))
	}
	writeExportResponse(w, protobuf, "rejectedSpans", res.Rejected, res.Problem)
	return nil
}

// writeExportResponse answers an OTLP export in the request's encoding:
// empty, or with partialSuccess {<rejectedField>, errorMessage}.
func writeExportResponse(w http.ResponseWriter, protobuf bool, rejectedField string, rejected int, problem string) {
	if protobuf {
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(exportResponse(rejected, problem))
		return
	}
	out := map[string]any{}
	if rejected > 0 {
		out["partialSuccess"] = map[string]any{rejectedField: rejected, "errorMessage": problem}
	}
	writeJSON(w, http.StatusOK, out)
}

// otlpProtobuf tells an OTLP/HTTP request's encoding from its Content-Type:
// protobuf (true) or JSON (false).
func otlpProtobuf(r *http.Request) (bool, error) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/x-protobuf", "application/protobuf":
		return true, nil
	case "application/json":
		return false, nil
	}
	return false, errs.InvalidField("Content-Type", "%s is not application/x-protobuf or application/json", strconv.Quote(clip(r.Header.Get("Content-Type"), 64)))
}

// exportResponse encodes an Export{Trace,Metrics}ServiceResponse: empty, or
// with partial_success (field 1) {rejected_spans or rejected_data_points (1),
// error_message (2)}.
func exportResponse(rejected int, problem string) []byte {
	if rejected == 0 {
		return nil
	}
	var partial []byte
	partial = protowire.AppendTag(partial, 1, protowire.VarintType)
	partial = protowire.AppendVarint(partial, uint64(rejected))
	partial = protowire.AppendTag(partial, 2, protowire.BytesType)
	partial = protowire.AppendString(partial, problem)
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	return protowire.AppendBytes(out, partial)
}
