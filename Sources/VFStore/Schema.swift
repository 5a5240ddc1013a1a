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
        """

    /// Serialises concurrent appliers (several API processes starting together) inside PostgreSQL.
    static let advisoryLockKey = "7261746"
}
