"""Job records in Redis, shared by the gateway (creates, reads, cancels) and the workers (run, finish).

A job is one Redis hash `hmu:job:<id>` with a TTL. State changes are atomic Lua scripts that only apply
from the expected states, so a cancelled job can never be marked succeeded by a late worker, and a job
redelivered after a worker died is taken over only when the previous holder stopped heart-beating.
Results larger than `inline_max_bytes` are written to `<artifacts_dir>/<id>/result.json`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

JOB_TYPES = ("generate", "unlearn", "evaluate")
ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
PREFIX = "hmu"
JOB_FILE_PATTERN = r"^sample-[0-9]{1,2}\.glb$"  # files a job writes for download (GET /jobs/{id}/artifacts/{name})


def job_file_path(artifacts_dir: Path, job_id: str, name: str) -> Path:
    """`<artifacts_dir>/<job id>/files/<name>`: a job's downloadable file (swept with the job's folder)."""
    if not re.fullmatch(r"[0-9a-f]{32}", job_id) or not re.fullmatch(JOB_FILE_PATTERN, name):
        raise ValueError(f"bad job file {job_id!r}/{name!r}")
    return Path(artifacts_dir) / job_id / "files" / name

# KEYS[1] job, KEYS[2] (only when the new state is terminal) the job's done list; ARGV: allowed states (comma
# list), ttl, the worker that must hold the job ('' = any), then field/value pairs. -> {applied, state before}.
# The worker fence keeps a worker whose job was taken over (re-queued after its heartbeat expired) from changing
# the record any more.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
if not string.find(',' .. ARGV[1] .. ',', ',' .. state .. ',', 1, true) then return {0, state} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then return {0, state} end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if #KEYS > 1 then  -- the new state is terminal: wake whoever waits on the job (KEYS[2], a list)
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return {1, state}
"""

# KEYS[1] job, KEYS[2] the set of running job ids, KEYS[3] the job's done list; ARGV: now, stale_after,
# max_attempts, worker, ttl -> {decision, attempts}
_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0} end
if state ~= 'queued' and state ~= 'running' then return {'terminal', 0} end
local now = tonumber(ARGV[1])
if state == 'running' then
  local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
  if now - beat < tonumber(ARGV[2]) then return {'duplicate', 0} end
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
if attempts > tonumber(ARGV[3]) then
  local msg = 'the job was interrupted ' .. (attempts - 1) .. ' times (worker lost); giving up'
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[1],
             'error', cjson.encode({code = 'worker_lost', message = msg}))
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('EXPIRE', KEYS[3], ARGV[5])
  return {'exhausted', attempts}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[1], 'heartbeat_at', ARGV[1],
           'worker', ARGV[4], 'progress', '0')
redis.call('SADD', KEYS[2], ARGV[6])
return {'run', attempts}
"""


# KEYS[1] job, KEYS[2] the owner's set of job ids (or ''); ARGV: limit (0: none), ttl, job key prefix, job id,
# then field/value pairs. Prunes finished or expired ids from the set, then creates the job unless the owner
# already has `limit` queued or running jobs. -> {created (1|0), active jobs before}
_CREATE = """
local active = 0
if KEYS[2] ~= '' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local state = redis.call('HGET', ARGV[3] .. id, 'state')
    if state == 'queued' or state == 'running' then active = active + 1 else redis.call('SREM', KEYS[2], id) end
  end
  if tonumber(ARGV[1]) > 0 and active >= tonumber(ARGV[1]) then return {0, active} end
  redis.call('SADD', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, active}
"""

# KEYS[1] job, KEYS[2] the set of running job ids; ARGV: job id, the worker that must hold it, ttl, now,
# message, graceful (1: the attempt is not counted), worker presence key prefix ('' = do not check),
# heartbeat older than this (seconds; with the prefix). Back to `queued` (to be published again) when the
# job is still running on that worker and, with a prefix, that worker's presence key expired and the job's
# heartbeat is older than the limit. -> 1 if re-queued, 0 if not
_REQUEUE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then redis.call('SREM', KEYS[2], ARGV[1]) return 0 end
local worker = redis.call('HGET', KEYS[1], 'worker') or ''
if worker ~= ARGV[2] then return 0 end
if ARGV[7] ~= '' then
  if redis.call('EXISTS', ARGV[7] .. worker) == 1 then return 0 end
  local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
  if tonumber(ARGV[4]) - beat < tonumber(ARGV[8]) then return 0 end
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'progress', '0', 'requeued_at', ARGV[4],
           'message', ARGV[5])
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
redis.call('HINCRBY', KEYS[1], 'requeues', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS[1] job, KEYS[2] the set of reserved job ids; ARGV: job id, worker, now. A queued job whose message a
# worker has taken (prefetched, not started yet) records that worker.
_RESERVE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'reserved_by', ARGV[2], 'reserved_at', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS[1] job, KEYS[2] the set of reserved job ids; ARGV: job id, presence prefix, now, stale after (s).
# A queued job reserved by a worker whose presence key expired is released (to be published again).
_RELEASE = """
local state = redis.call('HGET', KEYS[1], 'state')
local worker = redis.call('HGET', KEYS[1], 'reserved_by') or ''
if state ~= 'queued' or worker == '' then redis.call('SREM', KEYS[2], ARGV[1]) return 0 end
if redis.call('EXISTS', ARGV[2] .. worker) == 1 then return 0 end
local at = tonumber(redis.call('HGET', KEYS[1], 'reserved_at') or '0')
if tonumber(ARGV[3]) - at < tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'reserved_by', '')
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
# KEYS[1] hash job id -> unpacked upload bytes; ARGV: job id, bytes, limit, job key prefix. Entries of jobs
# that ended or expired are dropped first (their files are gone or going). -> {accepted (1|0), bytes in use}
_UPLOAD_RESERVE = """
local used = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local state = redis.call('HGET', ARGV[4] .. entries[i], 'state')
  if entries[i] ~= ARGV[1] then
    if state == 'queued' or state == 'running' then used = used + tonumber(entries[i + 1])
    else redis.call('HDEL', KEYS[1], entries[i]) end
  end
end
if used + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return {0, used} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, used}
"""
RUNNING_SET = f"{PREFIX}:jobs:running"
UPLOADS_KEY = f"{PREFIX}:uploads:bytes"
RESERVED_SET = f"{PREFIX}:jobs:reserved"


class TooManyJobs(Exception):
    """The owner already has its limit of queued and running jobs (the gateway answers 429)."""

    def __init__(self, active: int, limit: int):
        super().__init__(f"this API key already has {active} queued or running jobs (limit {limit}); "
                         "wait for one to finish or cancel one")
        self.active, self.limit = active, limit


JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:/[\w.@+~-]+){2,}/?")  # /a/b... (one segment, e.g. /models, stays)
_PATH_TAIL = r"(?:/[\w.@+~-]+)*/?"
HIDDEN_PATH = "<server path>"


def scrub_paths(text: str, private_dirs: tuple[str, ...] = ()) -> str:
    """`text` with server paths replaced by HIDDEN_PATH: anything under `private_dirs` (as configured,
    possibly relative, or resolved) and any absolute path of two or more segments."""
    for folder in sorted(private_dirs, key=len, reverse=True):
        if folder and folder not in (".", "/"):
            text = re.sub(re.escape(folder.rstrip("/")) + _PATH_TAIL, HIDDEN_PATH, text)
    return _ABSOLUTE_PATH.sub(HIDDEN_PATH, text)


def motion_file(artifacts_dir: Path | str, job_id: str, sample: int) -> Path:
    """Where a generate job's sample (an uploaded motion: sample 0) keeps its features (T, D) float32 for edits."""
    return Path(artifacts_dir) / job_id / f"motion_{int(sample)}.npy"


def new_job_id() -> str:
    return uuid.uuid4().hex


def _newest_mtime(folder: Path) -> float:
    """The most recent modification time of `folder` or anything below it (links are not followed)."""
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:  # removed while we walk
                continue
    return newest


@dataclass
class JobError(Exception):
    """A job failure with a stable code (bad_request, not_found, not_available, worker_lost, internal)."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


class JobStore:
    """Read and change job records. `client` is a `redis.Redis` with `decode_responses=True`."""

    def __init__(self, client: redis.Redis, artifacts_dir: Path, ttl_s: int,
                 inline_max_bytes: int = 2_000_000, private_dirs: tuple[Path, ...] = ()):
        self.r = client
        self.artifacts_dir = Path(artifacts_dir)
        folders = (self.artifacts_dir, *map(Path, private_dirs))
        # messages stored in records are shown to clients: never with these folders (or any absolute path)
        self.private_dirs = tuple(dict.fromkeys(text for f in folders for text in (str(f), str(f.resolve()))))
        self.ttl_s = int(ttl_s)
        self.inline_max_bytes = int(inline_max_bytes)
        self._transition = client.register_script(_TRANSITION)
        self._start = client.register_script(_START)
        self._create = client.register_script(_CREATE)
        self._requeue = client.register_script(_REQUEUE)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._upload_reserve = client.register_script(_UPLOAD_RESERVE)

    @staticmethod
    def key(job_id: str) -> str:
        return f"{PREFIX}:job:{job_id}"

    @staticmethod
    def done_key(job_id: str) -> str:
        """A list that gets an element when the job reaches a terminal state (waiters BLPOP it)."""
        return f"{PREFIX}:done:{job_id}"

    # ------------------------------------------------------------------ gateway side
    def create(self, job_type: str, request: dict[str, Any], model: str | None = None,
               job_id: str | None = None, owner: str = "", max_active: int = 0) -> dict[str, Any]:
        """Store a new queued job and return its record. `owner` is the creating key's fingerprint; with
        `max_active` > 0 an owner with that many queued or running jobs gets TooManyJobs (atomic in Redis,
        so the limit holds across gateway replicas)."""
        if job_type not in JOB_TYPES:
            raise ValueError(f"unknown job type {job_type!r}")
        job_id = job_id or new_job_id()
        fields = {"id": job_id, "type": job_type, "state": "queued", "progress": "0", "attempts": "0",
                  "created_at": repr(time.time()), "request": json.dumps(request), "model": model or "",
                  "owner": owner}
        args: list[Any] = [max_active, self.ttl_s, f"{PREFIX}:job:", job_id]
        for name, value in fields.items():
            args += [name, value]
        owned = f"{PREFIX}:owner:{owner}:jobs" if owner else ""
        created, active = self._create(keys=[self.key(job_id), owned], args=args)
        if not created:
            raise TooManyJobs(int(active), max_active)
        return self.decode(fields)

    def create_finished(self, job_type: str, request: dict[str, Any], result: dict[str, Any],
                        job_id: str | None = None, owner: str = "") -> dict[str, Any]:
        """Store a job that is done when created (an uploaded motion): succeeded with `result`, never queued,
        so it does not count toward the owner's active jobs."""
        if job_type not in JOB_TYPES:
            raise ValueError(f"unknown job type {job_type!r}")
        job_id = job_id or new_job_id()
        now = repr(time.time())
        fields = {"id": job_id, "type": job_type, "state": "succeeded", "progress": "1", "attempts": "0",
                  "created_at": now, "finished_at": now, "request": json.dumps(request), "model": "",
                  "owner": owner, "result": json.dumps(result, separators=(",", ":"))}
        with self.r.pipeline() as pipe:
            pipe.hset(self.key(job_id), mapping=fields)
            pipe.expire(self.key(job_id), self.ttl_s)
            pipe.execute()
        return self.decode(fields)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The decoded record (result loaded from disk when it was stored there), or None."""
        raw = self.r.hgetall(self.key(job_id))
        return self.decode(raw) if raw else None

    def cancel(self, job_id: str) -> tuple[bool, dict[str, Any] | None]:
        """Cancel a queued or running job. Returns (changed, record)."""
        error = json.dumps({"code": "cancelled", "message": "cancelled by the client"})
        now = repr(time.time())
        applied, _ = self._apply(job_id, ACTIVE, state="cancelled", finished_at=now, error=error)
        return applied == 1, self.get(job_id)

    def abandon(self, job_id: str, message: str) -> bool:
        """Fail a queued job that could not be enqueued."""
        applied, _ = self._apply(job_id, ("queued",), state="failed", finished_at=repr(time.time()),
                                 error=json.dumps({"code": "unavailable", "message": message}))
        return applied == 1

    def fail_lost(self, job_id: str) -> bool:
        """Fail a running job whose worker stopped heart-beating and which was not redelivered."""
        msg = "the worker running this job stopped responding and the job was not redelivered"
        applied, _ = self._apply(job_id, ("running",), state="failed", finished_at=repr(time.time()),
                                 error=json.dumps({"code": "worker_lost", "message": msg}))
        return applied == 1

    # ------------------------------------------------------------------ worker side
    def start(self, job_id: str, worker: str, stale_after_s: float, max_attempts: int) -> tuple[str, int]:
        """Claim a delivered job: ('run', attempt) or ('missing'|'terminal'|'duplicate'|'exhausted', n)."""
        args = [repr(time.time()), stale_after_s, max_attempts, worker, self.ttl_s, job_id]
        decision, attempts = self._start(keys=[self.key(job_id), RUNNING_SET, self.done_key(job_id)], args=args)
        return str(decision), int(attempts)

    def heartbeat(self, job_ids: list[str], worker: str = "") -> None:
        now = repr(time.time())
        for job_id in job_ids:
            self._apply(job_id, ("running",), worker, heartbeat_at=now)

    def progress(self, job_id: str, fraction: float, message: str = "", worker: str = "") -> bool:
        """Record progress; False when the job is no longer running (cancelled) or no longer `worker`'s."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        applied, _ = self._apply(job_id, ("running",), worker, progress=repr(fraction),
                                 message=self.scrub(message)[:500], heartbeat_at=repr(time.time()))
        return applied == 1

    def is_cancelled(self, job_id: str, worker: str = "") -> bool:
        """True when the job was cancelled, or (with `worker`) is no longer running on that worker."""
        state, holder = self.r.hmget(self.key(job_id), ["state", "worker"])
        if worker:
            return state != "running" or holder != worker
        return state == "cancelled"

    def requeue(self, job_id: str, worker: str, message: str, graceful: bool = True) -> bool:
        """Put a running job of `worker` back to queued (its worker stops; the caller publishes it again).
        `graceful`: the worker gave it up in an orderly way, so the attempt does not count."""
        args = [job_id, worker, self.ttl_s, repr(time.time()), message, "1" if graceful else "0", "", 0]
        return int(self._requeue(keys=[self.key(job_id), RUNNING_SET], args=args)) == 1

    def reserve(self, job_id: str, worker: str) -> bool:
        """`worker` took the job's message (not started yet): if it dies, `reap` gives the job to another."""
        args = [job_id, worker, repr(time.time())]
        return int(self._reserve(keys=[self.key(job_id), RESERVED_SET], args=args)) == 1

    def reap(self, stale_after_s: float, presence_prefix: str) -> list[tuple[str, str]]:
        """Re-queue the running jobs whose worker's presence key (`presence_prefix` + name) expired and whose
        heartbeat is older than `stale_after_s`, and release the queued jobs such a worker had reserved.
        Returns (job id, type) of each, for the caller to publish again."""
        reaped = []
        for job_id in sorted(self.r.smembers(RESERVED_SET)):
            args = [job_id, presence_prefix, repr(time.time()), stale_after_s]
            if int(self._release(keys=[self.key(job_id), RESERVED_SET], args=args)) == 1:
                reaped.append((job_id, self.r.hget(self.key(job_id), "type")))
        message = "re-queued: the worker running it stopped (no heartbeat)"
        for job_id in sorted(self.r.smembers(RUNNING_SET)):
            state, worker, job_type = self.r.hmget(self.key(job_id), ["state", "worker", "type"])
            if state != "running" or not worker:
                self.r.srem(RUNNING_SET, job_id)
                continue
            args = [job_id, worker, self.ttl_s, repr(time.time()), message, "0", presence_prefix, stale_after_s]
            if int(self._requeue(keys=[self.key(job_id), RUNNING_SET], args=args)) == 1:
                reaped.append((job_id, job_type))
        return reaped

    def succeed(self, job_id: str, result: dict[str, Any], worker: str = "") -> bool:
        """Store the result (inline or as a file) and mark the job succeeded; False if it was cancelled."""
        payload = json.dumps(result, separators=(",", ":"))
        fields: dict[str, str] = {"state": "succeeded", "progress": "1", "finished_at": repr(time.time())}
        if len(payload) <= self.inline_max_bytes:
            fields["result"] = payload
        else:
            path = self.artifacts_dir / job_id / "result.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(payload)
            tmp.replace(path)
            fields["result_file"] = str(path.relative_to(self.artifacts_dir))
        applied, _ = self._apply(job_id, ("running",), worker, **fields)
        return applied == 1

    def fail(self, job_id: str, code: str, message: str, worker: str = "") -> bool:
        error = {"code": code, "message": self.scrub(message)[:2000]}
        applied, _ = self._apply(job_id, ("running",), worker, state="failed", finished_at=repr(time.time()),
                                 error=json.dumps(error))
        return applied == 1

    # ------------------------------------------------------------------ uploads
    def uploads_dir(self, job_id: str) -> Path:
        """Where a job's uploaded sets are unpacked (`<artifacts>/<id>/uploads`)."""
        return self.artifacts_dir / job_id / "uploads"

    def account_uploads(self, job_id: str, nbytes: int, total_limit: int) -> tuple[bool, int]:
        """Count a job's unpacked uploads against `total_limit` (all queued and running jobs together,
        atomic across gateway replicas). Returns (accepted, bytes already in use)."""
        accepted, used = self._upload_reserve(keys=[UPLOADS_KEY],
                                              args=[job_id, int(nbytes), int(total_limit), f"{PREFIX}:job:"])
        return accepted == 1, int(used)

    def release_uploads(self, job_id: str) -> bool:
        """Delete a finished (or cancelled) job's uploads and their accounting; a queued or running job keeps
        them. Returns True if the folder was removed."""
        if self.r.hget(self.key(job_id), "state") in ACTIVE:
            return False
        self.r.hdel(UPLOADS_KEY, job_id)
        folder = self.uploads_dir(job_id)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    # ------------------------------------------------------------------ housekeeping
    def sweep_artifacts(self, min_age_s: float) -> list[str]:
        """Delete `<artifacts_dir>/<job id>` folders (uploads, large results, reports) whose job record
        is gone from Redis (expired, or never created) and in which nothing changed for `min_age_s`.

        Folders not named like a job id are left alone. Returns the ids removed.
        """
        if not self.artifacts_dir.is_dir():
            return []
        now = time.time()
        removed: list[str] = []
        for folder in sorted(self.artifacts_dir.iterdir()):
            if not JOB_ID.match(folder.name) or folder.is_symlink() or not folder.is_dir():
                continue
            if self.r.exists(self.key(folder.name)):
                continue
            try:
                if now - _newest_mtime(folder) < min_age_s:
                    continue  # e.g. uploads being unpacked before the job record is created
                shutil.rmtree(folder)
            except FileNotFoundError:
                continue
            removed.append(folder.name)
        return removed

    # ------------------------------------------------------------------ helpers
    def scrub(self, message: str) -> str:
        return scrub_paths(message, self.private_dirs)

    def scrub_tree(self, value: Any) -> Any:
        """`value` (JSON-like) with every string scrubbed of server paths (e.g. a report naming its sets)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {key: self.scrub_tree(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_tree(item) for item in value]
        return value

    def _apply(self, job_id: str, allowed: tuple[str, ...], worker: str = "", **fields: str) -> tuple[int, str]:
        args: list[Any] = [",".join(allowed), self.ttl_s, worker]
        for name, value in fields.items():
            args += [name, value]
        keys = [self.key(job_id)]
        if fields.get("state") in TERMINAL:
            keys.append(self.done_key(job_id))
        applied, before = self._transition(keys=keys, args=args)
        return int(applied), str(before)

    def decode(self, raw: dict[str, str]) -> dict[str, Any]:
        """Turn a Redis hash into a plain record with typed values."""
        record: dict[str, Any] = {
            "id": raw["id"], "type": raw["type"], "state": raw["state"],
            "progress": float(raw.get("progress") or 0), "message": raw.get("message") or None,
            "model": raw.get("model") or None, "attempts": int(raw.get("attempts") or 0),
            "worker": raw.get("worker") or None, "owner": raw.get("owner") or None,
            "request": json.loads(raw.get("request") or "{}"),
            "error": json.loads(raw["error"]) if raw.get("error") else None, "result": None,
        }
        for name in ("created_at", "started_at", "finished_at", "heartbeat_at"):
            record[name] = float(raw[name]) if raw.get(name) else None
        if raw.get("result"):
            record["result"] = json.loads(raw["result"])
        elif raw.get("result_file"):
            path = self.artifacts_dir / raw["result_file"]
            if path.is_file():
                record["result"] = json.loads(path.read_text())
            else:
                message = "the stored result is gone (its file was removed)"
                record["error"] = {"code": "result_missing", "message": message}
        return record
