"""Workers as Docker Swarm services (VF_RUNTIME=swarm) and two API replicas, end to end.

A real three-node swarm on this machine (scripts/swarm-cluster.sh): a manager dockerd on the
198.18.0.1 bridge, two worker-node dockerds each in a network namespace (198.18.0.2, .3), and
Debian's docker-registry on 198.18.0.1:5000. The API builds the `FROM scratch` worker image,
pushes it to that registry and pins its digest; the nodes pull it from there. Workers use host
networking: they reach this test's Redis on 198.18.0.1 and Prometheus scrapes them on their
node's address. Skips only when no engine can run here (the script exits 3), with its reason.

Placement is deterministic by construction: the script returns once all three nodes are Ready and
Active, and the services carry no spread preference, so the scheduler puts each one-replica
service on the node with the fewest active tasks: 4 workers on 3 empty nodes are always 2+1+1.
(A spread preference over a per-node label made the choice random, biased towards one node: in 2
of 5 runs all four landed on one.) About 100 s here, most of it the image push and pulls.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import requests

from conftest import free_port, wait_until, wait_port
from _orchestration_helpers import Api, make_database, prometheus_config, decode_envelope
from test_orchestration_docker import build_context
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "scripts" / "swarm-cluster.sh"
MANAGER = "198.18.0.1"
NODE_ADDRS = {"m": "198.18.0.1", "n1": "198.18.0.2", "n2": "198.18.0.3"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Swarm:
    def __init__(self, d: Path):
        self.dir = d

    def sock(self, node="m"):
        return str(self.dir / node / "docker.sock")

    def get(self, path, node="m"):
        out = subprocess.run(["curl", "-sSf", "--max-time", "10", "--unix-socket", self.sock(node),
                              f"http://localhost/v1.41{path}"], check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def services(self):
        f = quote(json.dumps({"label": ["vectorflow.managed=true"]}))
        return self.get(f"/services?filters={f}")

    def by_stream(self):
        """{stream id: [service, ...]}: more than one is a duplicate."""
        out: dict = {}
        for s in self.services():
            out.setdefault(s["Spec"]["Labels"]["vectorflow.stream_id"], []).append(s)
        return out

    def running_tasks(self):
        """{stream id: [node id of each running task]}."""
        services = {s["ID"]: s["Spec"]["Labels"]["vectorflow.stream_id"] for s in self.services()}
        out: dict = {}
        for t in self.get("/tasks?filters=" + quote(json.dumps({"desired-state": ["running"]}))):
            if t["ServiceID"] in services and t["Status"]["State"] == "running":
                out.setdefault(services[t["ServiceID"]], []).append(t["NodeID"])
        return out

    def task_table(self):
        """Every task of a managed service, oldest first: for failure messages."""
        services = {s["ID"]: s["Spec"]["Labels"]["vectorflow.stream_id"][:8] for s in self.services()}
        rows = [(t.get("CreatedAt", ""), services.get(t["ServiceID"], "?"), t.get("NodeID", "")[:8],
                 t["DesiredState"], t["Status"]["State"], t["Status"].get("Err", ""))
                for t in self.get("/tasks") if t["ServiceID"] in services]
        return "\n".join(" ".join(r) for r in sorted(rows))

    def containers_on(self, node):
        """Running worker containers on one node's engine, {stream id: count}."""
        f = quote(json.dumps({"label": ["vectorflow.managed=true"], "status": ["running"]}))
        out: dict = {}
        for c in self.get(f"/containers/json?filters={f}", node):
            sid = c["Labels"].get("vectorflow.stream_id")
            out[sid] = out.get(sid, 0) + 1
        return out

    def node_ids(self):
        return dict(line.split() for line in (self.dir / "nodes").read_text().splitlines())

    def script(self, *args):
        return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=90)


@pytest.fixture
def swarm():
    d = Path(tempfile.mkdtemp(prefix="vf-sw-"))  # short: unix socket paths are limited to 108 bytes
    s = Swarm(d)
    try:
        r = s.script("start", str(d))
        if r.returncode == 3:
            pytest.skip(f"no swarm can run here: {r.stderr.strip()}")
        assert r.returncode == 0, r.stderr
        yield s
    finally:
        s.script("stop", str(d))
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def shared_redis():
    """Redis on loopback (the APIs) and on the bridge's test address (the workers on every node)."""
    d = Path(tempfile.mkdtemp(prefix="vf-sw-redis-"))
    port = free_port()
    subprocess.run(["redis-server", "--bind", "127.0.0.1", MANAGER, "--port", str(port), "--save", "",
                    "--appendonly", "no", "--protected-mode", "no", "--daemonize", "yes",
                    "--pidfile", str(d / "r.pid"), "--dir", str(d)], check=True, capture_output=True)
    wait_port(port)
    yield port
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def frames(api: Api, sid: str, n=3, timeout=30.0):
    got = 0
    with ws_connect(f"{api.ws_base}/ws/frames?stream_id={sid}", open_timeout=5, max_size=None) as ws:
        deadline = time.monotonic() + timeout
        while got < n:
            left = deadline - time.monotonic()
            assert left > 0, f"only {got} frames of {sid} within {timeout}s"
            header, _ = decode_envelope(ws.recv(timeout=left))
            assert header["stream_id"] == sid
            got += 1


def role(api: Api):
    try:
        return requests.get(api.base + "/health", timeout=3).json().get("role")
    except requests.RequestException:
        return None


def test_swarm_end_to_end(swarm, shared_redis, spawn, bin_dir, postgres, prometheus_factory, samples):
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="vf-sw-t-"))
    context = tmp / "context"
    build_context(bin_dir / "vectorflow-worker", samples, context)
    image = f"{MANAGER}:5000/vf-swarm-worker:{os.getpid()}"
    db_url, _ = make_database(postgres)
    file_sd = tmp / "file_sd" / "workers.json"
    file_sd.parent.mkdir(parents=True)
    file_sd.write_text("[]")
    env = {"DATABASE_URL": db_url, "REDIS_URL": f"redis://127.0.0.1:{shared_redis}/0",
           "VF_WORKER_REDIS_URL": f"redis://{MANAGER}:{shared_redis}/0", "VF_RUNTIME": "swarm",
           "DOCKER_HOST": f"unix://{swarm.sock()}", "VF_WORKER_IMAGE": image, "VF_WORKER_PUSH": "true",
           "VF_WORKER_BUILD_CONTEXT": str(context), "VF_WORKER_DOCKERFILE": "Dockerfile.worker",
           "VF_FILE_SD_PATH": str(file_sd), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true", "VF_MEDIA_DIR": "/samples",
           "VF_SWARM_METRICS_PORTS": "19100-19199"}
    apis = [Api(spawn, bin_dir, f"swarm-api-{x}", free_port(), dict(env, VF_STATE_DIR=str(tmp / f"state-{x}")))
            for x in "ab"]
    a, b = apis
    prom = prometheus_factory(prometheus_config(a.port, file_sd))
    nodes = swarm.node_ids()
    addr_of = {nodes[k]: v for k, v in NODE_ADDRS.items()}
    try:
        a.start()
        wait_until(lambda: role(a) == "leader", 10, what="first API leader")
        b.start()
        wait_until(lambda: role(b) == "standby", 10, what="second API standby")

        # 4 active streams → 4 services, each one running task, on at least 2 nodes.
        ids = [a.create(f"Cam {i}", "file:///samples/vtest.avi", True) for i in range(4)]
        log(f"streams {ids}")
        def all_running():
            r = swarm.running_tasks()
            return r if set(r) == set(ids) else None
        placed = wait_until(all_running, 150, interval=0.5, what="a running task per stream")
        assert all(len(v) == 1 for v in placed.values()), placed
        per_node = {n: sum(1 for v in placed.values() if v[0] == nodes[n]) for n in NODE_ADDRS}
        assert sorted(per_node.values()) == [1, 1, 2], (per_node, swarm.task_table())
        log(f"placed in {time.monotonic() - t_start:.1f}s: {placed}")
        services = swarm.services()
        image_used = {s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] for s in services}
        assert len(image_used) == 1 and "@sha256:" in image_used.pop(), services
        spec = services[0]["Spec"]["TaskTemplate"]
        assert spec["ContainerSpec"]["ReadOnly"] is True and spec["ContainerSpec"]["CapabilityDrop"] == ["ALL"]
        assert spec["Resources"]["Limits"]["NanoCPUs"] > 0 and spec["RestartPolicy"]["Delay"] > 0

        # Each stream's status shows its task: state, node (hostname and id, as the engine's
        # /tasks and /nodes say), no error; through the standby too (the leader writes it to Redis).
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in swarm.get("/nodes")}
        def tasks_shown():
            placed_now = swarm.running_tasks()
            for i, sid in enumerate(ids):
                task = (requests.get(f"{apis[i % 2].base}/streams/{sid}", timeout=5).json().get("status") or {}).get("task")
                if not task or task["state"] != "running" or task["node_id"] != placed_now[sid][0]:
                    return None
                assert task["node"] == hostnames[task["node_id"]] and task["error"] is None, task
            return True
        wait_until(tasks_shown, 15, interval=0.5, what="every stream's status showing its running task")
        schema = requests.get(f"{a.base}/openapi.json", timeout=5).json()["components"]["schemas"]
        assert schema["StreamStatus"]["properties"]["task"] == {"$ref": "#/components/schemas/WorkerTask"}
        shown = requests.get(f"{a.base}/streams/{ids[0]}", timeout=5).json()["status"]["task"]
        assert set(shown) == set(schema["WorkerTask"]["properties"]) == set(schema["WorkerTask"]["required"]), shown

        # Frames from every stream, through either replica.
        for i, sid in enumerate(ids):
            frames(apis[i % 2], sid, 3, 40)

        # Prometheus scrapes each worker at its node's address, labelled with the node.
        def scraped():
            up = {t["labels"]["stream_id"]: t for t in prom.targets()
                  if t["labels"].get("job") == "vectorflow-workers" and t["health"] == "up"}
            return up if set(up) == set(ids) else None
        up = wait_until(scraped, 40, interval=0.5, what="every worker scraped")
        placed = swarm.running_tasks()
        for sid, t in up.items():
            assert t["labels"]["node"] == placed[sid][0], t
            assert t["labels"]["instance"].startswith(addr_of[placed[sid][0]] + ":"), (t, placed)

        # A grid change through the standby: updated in place, still one service.
        before = {sid: v[0] for sid, v in swarm.by_stream().items()}
        r = requests.put(f"{b.base}/streams/{ids[0]}", json={"grid_size": 8}, timeout=10)
        assert r.status_code == 200, r.text

        def updated():
            svc = swarm.by_stream()[ids[0]]
            assert len(svc) == 1, svc
            env = svc[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
            return svc[0] if "GRID_SIZE=8" in env else None
        svc = wait_until(updated, 20, what="service updated")
        assert svc["ID"] == before[ids[0]]["ID"] and svc["Version"]["Index"] > before[ids[0]]["Version"]["Index"]
        frames(a, ids[0], 3, 40)

        # A worker node's engine stops: its tasks move, frames resume.
        placed = swarm.running_tasks()
        # 2+1+1 stays so through the update (the updated task goes to a least-loaded node), so a
        # worker node holds a task.
        victims = [n for n in ("n1", "n2") if nodes[n] in {v[0] for v in placed.values()}]
        assert victims, (placed, swarm.task_table())
        victim = victims[0]
        moved = [sid for sid, v in placed.items() if v[0] == nodes[victim]]
        t0 = time.monotonic()
        assert swarm.script("stop-node", str(swarm.dir), victim).returncode == 0
        wait_until(lambda: all((r := swarm.running_tasks()).get(s) and r[s][0] != nodes[victim] for s in moved), 60,
                   interval=0.5, what=f"tasks of {victim} rescheduled")
        t_resched = time.monotonic() - t0
        for sid in moved:
            frames(b, sid, 3, 40)
        t_frames = time.monotonic() - t0
        log(f"RESCHEDULE: node {victim} stopped; {len(moved)} task(s) running elsewhere after {t_resched:.1f}s, "
            f"frames again after {t_frames:.1f}s")
        # The status follows the task to its new node.
        def status_moved():
            r = swarm.running_tasks()
            for sid in moved:
                task = (requests.get(f"{b.base}/streams/{sid}", timeout=5).json().get("status") or {}).get("task")
                if not task or task["state"] != "running" or task["node_id"] != r[sid][0]:
                    return None
            return True
        wait_until(status_moved, 15, interval=0.5, what="the moved streams' status showing the new node")

        # The node comes back: nothing duplicated.
        assert swarm.script("start-node", str(swarm.dir), victim).returncode == 0
        wait_until(lambda: all(n["Status"]["State"] == "ready" for n in swarm.get("/nodes")), 30, what="node ready")
        time.sleep(3)
        r = swarm.running_tasks()
        assert set(r) == set(ids) and all(len(v) == 1 for v in r.values()), r
        counts: dict = {}
        for n in NODE_ADDRS:
            for sid, k in swarm.containers_on(n).items():
                counts[sid] = counts.get(sid, 0) + k
        assert counts == {sid: 1 for sid in ids}, counts

        # Failover: a change through the leader, kill -9 the leader, a change through the other.
        assert a.set_active(ids[3], False)["is_active"] is False
        a.proc.proc.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: role(b) == "leader", 10, interval=0.1, what="the standby to take over")
        t_failover = time.monotonic() - t0
        log(f"FAILOVER: standby leader {t_failover:.1f}s after kill -9 of the leader")
        r = requests.put(f"{b.base}/streams/{ids[1]}", json={"grid_size": 12}, timeout=10)
        assert r.status_code == 200, r.text

        def converged():
            s = swarm.by_stream()
            if set(s) != set(ids[:3]) or any(len(v) != 1 for v in s.values()):
                return None
            return "GRID_SIZE=12" in s[ids[1]][0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
        wait_until(converged, 20, what="changes through both replicas reconciled")
        a.start()  # the old leader returns as a standby
        wait_until(lambda: role(a) == "standby", 10, what="restarted API standby")

        # Deactivate and delete: services and targets gone.
        for sid in ids[:3]:
            b.set_active(sid, False)
        for sid in ids:
            assert requests.delete(f"{b.base}/streams/{sid}", timeout=10).status_code == 204
        wait_until(lambda: not swarm.services(), 20, what="services removed")
        wait_until(lambda: json.loads(file_sd.read_text()) == [], 10, what="file_sd emptied")
        log(f"swarm scenario {time.monotonic() - t_start:.1f}s")
    finally:
        for api in apis:
            if api.proc is not None and api.proc.alive():
                api.proc.stop(signal.SIGTERM, timeout=15)
        for s in swarm.services():
            subprocess.run(["curl", "-s", "--max-time", "10", "-X", "DELETE", "--unix-socket", swarm.sock(),
                            f"http://localhost/v1.41/services/{s['ID']}"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
