"""docker/api-entrypoint.sh, the API image's first step, run for real on this machine.

The script is the one the image runs; only its final command is replaced (its arguments: a small
Python program in place of vectorflow-api) and the user it drops to (VF_RUN_AS: a fresh user made
here, since this host has no `vectorflow` user). The socket is a real listening unix socket whose
group is a fresh non-zero gid, as on a stock Linux host where /var/run/docker.sock is root:docker.
Needs root (as the container's entrypoint does): the users and groups made here are removed after.
"""
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / "docker" / "api-entrypoint.sh"
# Debian's own Python: the test's interpreter may live under /root, where the fresh user cannot go.
PROBE = ["/usr/bin/python3", "-c", """
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["DOCKER_HOST"][len("unix://"):])
s.close()
print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups()}))
"""]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the entrypoint step runs as root, like in the container")


def unused_gid() -> int:
    taken = {int(line.split(":")[2]) for line in Path("/etc/group").read_text().splitlines() if line.count(":") >= 3}
    taken |= {int(line.split(":")[3]) for line in Path("/etc/passwd").read_text().splitlines() if line.count(":") >= 4}
    rng = random.Random()
    while True:
        gid = rng.randint(61000, 64000)
        if gid not in taken:
            return gid


def groups_with_gid(gid: int) -> list[str]:
    return [line.split(":")[0] for line in Path("/etc/group").read_text().splitlines()
            if line.count(":") >= 3 and line.split(":")[2] == str(gid)]


@pytest.fixture
def user():
    """A fresh unprivileged system user with its own primary group; removed afterwards."""
    name = "vfe" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def docker_socket():
    """(path, server socket) of a listening unix socket, mode 660, in a folder anyone may enter."""
    d = tempfile.mkdtemp(prefix="vf-ep-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "docker.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(8)
    os.chmod(path, 0o660)
    try:
        yield path
    finally:
        server.close()
        shutil.rmtree(d, ignore_errors=True)


def entrypoint(env: dict, *argv, as_user=None):
    full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}
    prefix = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--init-groups", "--"] if as_user else []
    return subprocess.run([*prefix, "sh", str(SCRIPT), *argv], env=full, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("group_exists", [True, False], ids=["host-group-known", "bare-gid"])
def test_entrypoint_joins_socket_group_and_drops_root(user, docker_socket, group_exists):
    gid = unused_gid()
    group = None
    if group_exists:
        group = "vfg" + uuid.uuid4().hex[:8]
        subprocess.run(["groupadd", "--gid", str(gid), group], check=True, capture_output=True)
    os.chown(docker_socket, 0, gid)
    env = {"DOCKER_HOST": f"unix://{docker_socket}", "VF_RUN_AS": user}
    try:
        # Root cannot pass for the user here: the probe proves the dropped process itself connects.
        result = entrypoint(env, *PROBE)
        assert result.returncode == 0, result.stdout + result.stderr
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        pw = subprocess.run(["id", "-u", user], check=True, capture_output=True, text=True).stdout.strip()
        assert seen["uid"] == seen["euid"] == int(pw) != 0, seen
        assert gid in seen["groups"] and 0 not in seen["groups"] and seen["gid"] != 0, seen
        made = groups_with_gid(gid)
        assert made == ([group] if group_exists else [f"dockersock{gid}"]), made
        # A second start (a restarted container keeps its /etc/group) works the same.
        again = entrypoint(env, *PROBE)
        assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == seen, again.stderr
        # Without the step, the user alone cannot reach the socket: the group is what grants it.
        alone = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *PROBE],
                               env={"DOCKER_HOST": env["DOCKER_HOST"]}, capture_output=True, text=True, timeout=30)
        assert alone.returncode != 0 and "Permission denied" in alone.stderr, alone.stdout + alone.stderr
    finally:
        for g in groups_with_gid(gid):
            subprocess.run(["groupdel", g], capture_output=True)


def test_entrypoint_without_socket_names_the_fix(user):
    missing = f"/tmp/vf-ep-absent-{uuid.uuid4().hex[:8]}/docker.sock"
    result = entrypoint({"DOCKER_HOST": f"unix://{missing}", "VF_RUN_AS": user}, *PROBE)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""  # the final command never ran
    assert f"no Docker socket at {missing}" in result.stderr
    assert "/var/run/docker.sock:/var/run/docker.sock" in result.stderr  # the mount that fixes it


def test_entrypoint_as_non_root_names_the_group_to_add(user, docker_socket):
    """Started as the unprivileged user (the image's default USER), the step cannot join a group:
    it names the two fixes, with the socket's real gid."""
    gid = unused_gid()
    os.chown(docker_socket, 0, gid)
    result = entrypoint({"DOCKER_HOST": f"unix://{docker_socket}", "VF_RUN_AS": user}, *PROBE, as_user=user)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"--group-add {gid}" in result.stderr and "user: root" in result.stderr, result.stderr


def test_entrypoint_skips_the_socket_for_the_process_runtime(user):
    """VF_RUNTIME=process needs no engine: no socket, no error, still not root."""
    result = entrypoint({"VF_RUNTIME": "process", "DOCKER_HOST": "unix:///nonexistent/docker.sock",
                         "VF_RUN_AS": user}, "id", "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != "0"
