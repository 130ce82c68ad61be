-- Traces, observations and scores (Langfuse-compatible). Ids are TEXT: OTel
-- hex ids and arbitrary SDK ids. Each row keeps the merged Langfuse fields in
-- doc and, per field, the stamp of the write that set it (stamps), so that
-- merges do not depend on arrival order; the columns are extracted from doc
-- for filtering, ordering and aggregation.

CREATE TABLE traces (
    project_id  text        NOT NULL,
    id          text        NOT NULL,
    "timestamp" timestamptz NOT NULL,
    name        text,
    user_id     text,
    session_id  text,
    release     text,
    version     text,
    environment text        NOT NULL DEFAULT 'default',
    tags        text[]      NOT NULL DEFAULT '{}',
    public      boolean     NOT NULL DEFAULT false,
    doc         jsonb       NOT NULL,
    stamps      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
CREATE INDEX traces_project_timestamp ON traces (project_id, "timestamp" DESC);
CREATE INDEX traces_user ON traces (project_id, user_id, "timestamp" DESC) WHERE user_id IS NOT NULL;
CREATE INDEX traces_session ON traces (project_id, session_id, "timestamp" DESC) WHERE session_id IS NOT NULL;
CREATE INDEX traces_name ON traces (project_id, name, "timestamp" DESC);
CREATE INDEX traces_tags ON traces USING gin (tags);
CREATE INDEX traces_environment ON traces (project_id, environment, "timestamp" DESC);
CREATE INDEX traces_release ON traces (project_id, release) WHERE release IS NOT NULL;
CREATE INDEX traces_version ON traces (project_id, version) WHERE version IS NOT NULL;
-- Retention deletes by age across projects.
CREATE INDEX traces_retention ON traces ("timestamp");

CREATE TABLE observations (
    project_id            text        NOT NULL,
    id                    text        NOT NULL,
    trace_id              text,
    parent_observation_id text,
    type                  text        NOT NULL DEFAULT 'SPAN',
    name                  text,
    start_time            timestamptz NOT NULL,
    end_time              timestamptz,
    completion_start_time timestamptz,
    model                 text,
    environment           text        NOT NULL DEFAULT 'default',
    level                 text        NOT NULL DEFAULT 'DEFAULT',
    version               text,
    usage_input           double precision,
    usage_output          double precision,
    usage_total           double precision,
    total_cost            double precision,
    doc                   jsonb       NOT NULL,
    stamps                jsonb       NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
CREATE INDEX observations_trace ON observations (project_id, trace_id, start_time);
CREATE INDEX observations_start ON observations (project_id, start_time DESC);
CREATE INDEX observations_name ON observations (project_id, name, start_time DESC);
CREATE INDEX observations_type ON observations (project_id, type, start_time DESC);
CREATE INDEX observations_environment ON observations (project_id, environment, start_time DESC);
CREATE INDEX observations_parent ON observations (project_id, parent_observation_id) WHERE parent_observation_id IS NOT NULL;
CREATE INDEX observations_version ON observations (project_id, version) WHERE version IS NOT NULL;

CREATE TABLE scores (
    project_id     text        NOT NULL,
    id             text        NOT NULL,
    trace_id       text,
    observation_id text,
    session_id     text,
    name           text        NOT NULL,
    "timestamp"    timestamptz NOT NULL,
    environment    text        NOT NULL DEFAULT 'default',
    doc            jsonb       NOT NULL,
    stamps         jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
CREATE INDEX scores_trace ON scores (project_id, trace_id);
CREATE INDEX scores_retention ON scores ("timestamp") WHERE trace_id IS NULL;
CREATE INDEX observations_retention ON observations (start_time) WHERE trace_id IS NULL;
