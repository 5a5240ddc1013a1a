"""The worker's side of the motion-events stream, for tests: MotionEvent entries in the exact field
format of Sources/VFCore/MotionEvent.swift (MotionEvent.Field, `streamFields`), appended with XADD to
`vectorflow:events` (RedisKeys.events) over a minimal RESP client. Kept in one place so a real
worker can take its place."""
import socket

EVENTS_KEY = "vectorflow:events"      # RedisKeys.events
EVENTS_GROUP = "vectorflow-api"       # RedisKeys.eventsGroup

# MotionEvent.Field raw values, in streamFields' order.
F_ID, F_SEQ, F_PHASE = "event_id", "seq", "phase"
F_STREAM_ID, F_STREAM_NAME, F_ZONE_ID, F_ZONE_NAME = "stream_id", "stream_name", "zone_id", "zone_name"
F_STARTED, F_LAST, F_ENDED = "started_at", "last_motion_at", "ended_at"
F_PEAK_SPEED, F_PEAK_AT, F_MEAN_SPEED, F_MEAN_DIR = "peak_speed", "peak_at", "mean_speed", "mean_direction_deg"
F_VECTORS, F_PEAK_VECTORS, F_FRAMES, F_SNAPSHOT = "vector_count", "peak_vectors", "frames", "snapshot"


def _num(v):
    """Numbers as Swift's description writes them ("\\(double)", String(int))."""
    return repr(float(v)) if isinstance(v, float) else str(int(v))


def entry_fields(ev, seq, phase, snapshot=None):
    """The XADD field/value pairs of one entry of event `ev` (a dict with the event's state so far)."""
    out = [(F_ID, ev["id"]), (F_SEQ, str(seq)), (F_PHASE, phase), (F_STREAM_ID, ev["stream_id"]),
           (F_STREAM_NAME, ev["stream_name"]), (F_ZONE_ID, ev["zone_id"]), (F_ZONE_NAME, ev["zone_name"]),
           (F_STARTED, _num(ev["started_at"])), (F_LAST, _num(ev["last_motion_at"]))]
    if ev.get("ended_at") is not None:
        out.append((F_ENDED, _num(ev["ended_at"])))
    out += [(F_PEAK_SPEED, _num(ev["peak_speed"])), (F_PEAK_AT, _num(ev["peak_at"])),
            (F_MEAN_SPEED, _num(ev["mean_speed"]))]
    if ev.get("mean_direction_deg") is not None:
        out.append((F_MEAN_DIR, _num(ev["mean_direction_deg"])))
    out += [(F_VECTORS, str(ev["vector_count"])), (F_PEAK_VECTORS, str(ev["peak_vectors"])),
            (F_FRAMES, str(ev["frames"]))]
    if snapshot is not None:
        out.append((F_SNAPSHOT, snapshot))
    return out


class Resp:
    """A minimal blocking RESP2 client (binary-safe arguments), enough for XADD and the checks."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts += [b"$%d\r\n" % len(b), b, b"\r\n"]
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def xadd(self, fields):
        args = ["XADD", EVENTS_KEY, "*"]
        for k, v in fields:
            args += [k, v]
        return self.command(*args)


class EventScript:
    """The entries one event produces, as a worker would append them: start (seq 1), updates, end,
    each with the whole state so far; a snapshot on the start, when the peak grows, and on the end."""

    def __init__(self, event_id, stream_id, stream_name, zone_id, zone_name, started_at, updates=2,
                 snapshot_of=lambda seq: None):
        self.ev = {"id": event_id, "stream_id": stream_id, "stream_name": stream_name, "zone_id": zone_id,
                   "zone_name": zone_name, "started_at": started_at, "last_motion_at": started_at,
                   "ended_at": None, "peak_speed": 1.5, "peak_at": started_at, "mean_speed": 1.25,
                   "mean_direction_deg": 90.0, "vector_count": 12, "peak_vectors": 12, "frames": 1}
        self.updates = updates
        self.snapshot_of = snapshot_of
        self.entries = []
        self._build()

    def _build(self):
        ev = self.ev
        self.entries.append((1, "start", entry_fields(ev, 1, "start", self.snapshot_of(1))))
        seq = 1
        for k in range(self.updates):
            seq += 1
            ev["last_motion_at"] = ev["started_at"] + 1.0 + k
            ev["frames"] += 10
            ev["vector_count"] += 100
            ev["peak_speed"] += 0.5
            ev["peak_at"] = ev["last_motion_at"]
            ev["peak_vectors"] += 3
            ev["mean_speed"] += 0.125
            self.entries.append((seq, "update", entry_fields(ev, seq, "update", self.snapshot_of(seq))))
        seq += 1
        ev["ended_at"] = ev["last_motion_at"] + 2.0
        self.entries.append((seq, "end", entry_fields(ev, seq, "end", self.snapshot_of(seq) or b"\xff\xd8end")))
        self.final_seq = seq
