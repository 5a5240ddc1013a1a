-- Vector Flow schema: the desired state of every camera stream.
-- Idempotent: vectorflow-api applies this same text at start (VFStore/Schema.swift holds a copy
-- that a unit test keeps identical), so a fresh database just works.
-- gen_random_uuid() is built into PostgreSQL 13 and later.
-- Length and range limits are enforced by the API's validation (documented in /openapi.json),
-- not by CHECK constraints, so that rows written by older versions of the platform stay readable.
CREATE TABLE IF NOT EXISTS camera_streams (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    rtsp_url TEXT NOT NULL,
    grid_size INTEGER NOT NULL DEFAULT 16,
    threshold DOUBLE PRECISION NOT NULL DEFAULT 1.2,
    is_active BOOLEAN NOT NULL DEFAULT FALSE,
    worker_container_name VARCHAR(255),
    worker_started_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
-- Motion zones of a stream: a polygon in normalised image coordinates (JSONB [[x,y],...], 0..1)
-- and the rule that turns the vectors inside it into an event. Deleted with their stream.
CREATE TABLE IF NOT EXISTS stream_zones (
    id UUID PRIMARY KEY,
    stream_id UUID NOT NULL REFERENCES camera_streams(id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    polygon JSONB NOT NULL,
    min_vectors INTEGER NOT NULL,
    min_mean_speed DOUBLE PRECISION,
    direction_deg DOUBLE PRECISION,
    direction_tolerance_deg DOUBLE PRECISION,
    min_duration_s DOUBLE PRECISION NOT NULL,
    quiet_time_s DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    UNIQUE (stream_id, name)
);
-- Motion events of the zones (docs/events.md): one row per event, keyed by the worker's event id,
-- written by the API's consumer of the Redis Stream vectorflow:events. Each entry carries the
-- event's whole state with a growing seq; an upsert guarded by seq makes re-applying an entry (or
-- applying an older one late) change nothing. No foreign key to camera_streams or stream_zones:
-- an event is history and outlives its stream and zone (their names are copied into the row);
-- the retention sweep (VF_EVENT_RETENTION_HOURS) removes old events with their snapshot and
-- deliveries.
CREATE TABLE IF NOT EXISTS motion_events (
    id UUID PRIMARY KEY,
    stream_id UUID NOT NULL,
    stream_name VARCHAR(255) NOT NULL,
    zone_id UUID NOT NULL,
    zone_name VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    last_motion_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    peak_speed DOUBLE PRECISION NOT NULL,
    peak_at TIMESTAMPTZ NOT NULL,
    mean_speed DOUBLE PRECISION NOT NULL,
    mean_direction_deg DOUBLE PRECISION,
    vector_count BIGINT NOT NULL,
    peak_vectors INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
-- GET /events: newest first (keyset on started_at, id), optionally by stream or zone.
CREATE INDEX IF NOT EXISTS motion_events_started ON motion_events (started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS motion_events_stream_started ON motion_events (stream_id, started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS motion_events_zone_started ON motion_events (zone_id, started_at DESC, id DESC);
-- The retention sweep: by the event's last motion (its end once ended).
CREATE INDEX IF NOT EXISTS motion_events_last_seen ON motion_events ((COALESCE(ended_at, last_motion_at)));
-- The JPEG at an event's peak (preview size), guarded by the seq of the entry that carried it.
CREATE TABLE IF NOT EXISTS motion_event_snapshots (
    event_id UUID PRIMARY KEY,
    seq INTEGER NOT NULL,
    jpeg BYTEA NOT NULL
);
-- One webhook delivery per event, phase (start, end) and configured URL; the body is the event as
-- the entry that queued it had it. Pending rows are resumed after a restart.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id UUID NOT NULL,
    phase VARCHAR(16) NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    state VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_error TEXT,
    delivered_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    UNIQUE (event_id, phase, url)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
