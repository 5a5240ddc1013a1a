"""`docker compose down` leaves no worker behind: with VF_STOP_WORKERS_ON_EXIT=true (as compose sets
it) the API stops every worker container on SIGTERM, and the desired state brings them back at its
next start. Real API, real PostgreSQL and Redis, a private real dockerd (scripts/docker-engine.sh)
and the worker image the API builds itself (as in tests/test_orchestration_docker.py).
"""
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from _orchestration_helpers import Api, make_database
from conftest import free_port, wait_until
from test_orchestration_docker import DockerRuntime, build_context, docker_engine  # noqa: F401 (fixture)


def running(runtime: DockerRuntime, ids) -> dict | None:
    """{stream id: container id} once exactly one running container exists per id, else None."""
    w = runtime.workers()
    mine = {k: v for k, v in w.items() if k in ids}
    if set(mine) == set(ids) and all(isinstance(v, str) and not v.startswith("(") for v in mine.values()):
        return mine
    return None


def test_sigterm_stops_every_worker_and_restart_brings_them_back(docker_engine, spawn, bin_dir, postgres,  # noqa: F811
                                                                 redis_server, samples):
    tmp = Path(tempfile.mkdtemp(prefix="vf-compose-stop-"))
    context = tmp / "context"
    build_context(bin_dir / "vectorflow-worker", samples, context)
    runtime = DockerRuntime(docker_engine, f"vf-stop-worker:{os.getpid()}", context)
    db_url, db_name = make_database(postgres)
    file_sd = tmp / "workers.json"
    file_sd.write_text("[]")
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "VF_FILE_SD_PATH": str(file_sd),
           "VF_STATE_DIR": str(tmp / "state"), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true",
           "VF_MEDIA_DIR": "/samples",
           "VF_WORKER_STOP_TIMEOUT": "5", "VF_STOP_WORKERS_ON_EXIT": "true", **runtime.env()}
    api = Api(spawn, bin_dir, "compose-stop-api", free_port(), env)
    try:
        api.start()
        ids = [api.create("Gate A", "file:///samples/vtest.avi", True),
               api.create("Gate B", "file:///samples/vtest.avi", True)]
        idle = api.create("Idle C", "file:///samples/vtest.avi", False)
        first = wait_until(lambda: running(runtime, ids), 90, interval=0.2, what="a worker per active stream")
        wait_until(lambda: len(json.loads(file_sd.read_text())) == 2, 15, what="file_sd with both workers")

        # `docker compose down`: SIGTERM to the API. It exits 0 within the bound, and no managed
        # container is left, running or exited (the network could not be removed otherwise).
        t = time.monotonic()
        api.stop()
        took = time.monotonic() - t
        assert runtime.containers() == [], runtime.containers()
        # Both stopped at once: well under two stop timeouts (the workers quit on SIGTERM anyway).
        assert took < 10, f"API took {took:.1f}s to stop its workers"
        out = Path(api.proc.log_path).read_text(errors="replace")
        assert "stopping every worker" in out and out.count("(the API is stopping)") == 2, out[-3000:]
        assert json.loads(file_sd.read_text()) == []
        rows = postgres.psql(f"SELECT id, is_active, worker_container_name IS NULL FROM camera_streams ORDER BY id",
                             db=db_name).split()
        assert sorted(rows) == sorted([f"{i}|t|t" for i in ids] + [f"{idle}|f|t"]), rows

        # The next start: the desired state (is_active) brings a new worker for each active stream.
        api.start()
        again = wait_until(lambda: running(runtime, ids), 60, interval=0.2, what="workers back after restart")
        assert not set(again.values()) & set(first.values()), (first, again)  # new containers, none adopted
        assert idle not in runtime.workers()
        wait_until(lambda: all(api.get(f"/streams/{i}")["worker_container_name"] == f"vector-worker-{i}"
                               for i in ids), 15, what="worker records after restart")
        api.stop()
        assert runtime.containers() == []
    finally:
        if api.proc is not None and api.proc.alive():
            api.proc.stop()
        runtime.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
