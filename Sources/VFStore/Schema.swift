/// The database schema the API applies at start. It is the text of the repository's `init.sql`
/// (a unit test keeps the two identical), so `docker compose`'s init script and a bare
/// `vectorflow-api` against an empty database produce the same table.
public enum Schema {
    public static let sql = """
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
        """

    /// Serialises concurrent appliers (several API processes starting together) inside PostgreSQL.
    static let advisoryLockKey = "7261746"
}
