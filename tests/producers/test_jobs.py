"""Backfill jobs: each of their Lua scripts run directly on the real Redis, the operators' transitions, the
invalid-rows CSV and the ETA that counts the daily quota."""
from __future__ import annotations

import json

import pytest

from producers.jobs import Job, Jobs, eta
from worker import lua
from worker.ledger import Ledger


@pytest.fixture
def jobs(redis_client, key_prefix):
    return Jobs(Ledger(redis_client, key_prefix))


@pytest.fixture
def script(redis_client):
    return lambda name, keys, args: redis_client.register_script(lua.load("producers", name))(keys=keys, args=args)


def test_every_script_is_tested_here():
    assert set(lua.names("producers")) == {"job_claim", "job_lease", "job_read", "job_settle"}


def test_job_claim_takes_a_queued_or_orphaned_job_once(jobs, script, redis_client):
    job = jobs.create("/tmp/x.jsonl", None, {}, 10)
    keys = [jobs.key(job.id), jobs.key(job.id, "lease")]
    assert script("job_claim", keys, ["a", 5000, 100.0]) == b"ok"
    assert script("job_claim", keys, ["b", 5000, 101.0]) == b"busy"  # a second feeder never runs it too
    redis_client.delete(jobs.key(job.id, "lease"))  # the first feeder died: its lease ran out
    assert script("job_claim", keys, ["b", 5000, 102.0]) == b"ok"
    taken = jobs.get(job.id)
    assert taken.status == "running" and taken.claims == 2 and taken.started_at == 100.0
    jobs.set_status(job.id, "paused")
    redis_client.delete(jobs.key(job.id, "lease"))
    assert script("job_claim", keys, ["c", 5000, 103.0]) == b"paused"


def test_job_lease_renews_and_releases_only_for_its_holder(jobs, script, redis_client):
    key = jobs.key("j1", "lease")
    redis_client.set(key, "a", px=1000)
    assert script("job_lease", [key], ["b", "renew", 60000]) == 0 and redis_client.pttl(key) <= 1000
    assert script("job_lease", [key], ["a", "renew", 60000]) == 1 and redis_client.pttl(key) > 1000
    assert script("job_lease", [key], ["b", "release", 0]) == 0 and redis_client.exists(key)
    assert script("job_lease", [key], ["a", "release", 0]) == 1 and not redis_client.exists(key)


def test_job_read_records_a_row_only_under_the_lease(jobs, script, redis_client):
    job = jobs.create("/tmp/x.jsonl", None, {}, 10)
    keys = [jobs.key(job.id), jobs.key(job.id, "lease"), jobs.key(job.id, "inflight"), jobs.key(job.id, "invalid")]
    redis_client.set(keys[1], "a")
    redis_client.hset(keys[0], "pending", 0)
    assert script("job_read", keys, ["a", 1, 3, "sent", "o-1", ""]) == 1
    assert script("job_read", keys, ["a", 2, 4, "invalid", "", '{"line": 4, "errors": []}']) == 1
    assert script("job_read", keys, ["b", 3, 5, "sent", "o-2", ""]) == 0  # a feeder that lost its lease
    got = jobs.get(job.id)
    assert (got.position, got.line, got.counts["sent"], got.counts["invalid"], got.in_flight) == (2, 4, 1, 1, 1)
    assert not redis_client.hexists(keys[0], "pending") and jobs.invalid_rows(job.id) == [{"line": 4, "errors": []}]


def test_job_settle_counts_each_order_once(jobs, script, redis_client):
    keys = [jobs.key("j2"), jobs.key("j2", "inflight")]
    redis_client.sadd(keys[1], "o-1", "o-2")
    assert script("job_settle", keys, ["o-1", "done", "o-2", "failed"]) == 2
    assert script("job_settle", keys, ["o-1", "done"]) == 0  # settled already: by another process, say
    assert redis_client.hmget(keys[0], "done", "failed") == [b"1", b"1"] and not redis_client.exists(keys[1])


def test_operators_pause_resume_and_cancel_what_allows_it(jobs):
    job = jobs.create("/tmp/x.jsonl", None, {}, 10)
    assert jobs.set_status(job.id, "paused") == "queued"
    with pytest.raises(ValueError, match="cannot be paused"):
        jobs.set_status(job.id, "paused")
    jobs.set_status(job.id, "queued")
    jobs.set_status(job.id, "cancelled")
    with pytest.raises(ValueError, match="cannot be resumed"):
        jobs.set_status(job.id, "queued")
    with pytest.raises(LookupError, match="no such job"):
        jobs.set_status("nope", "paused")


def test_the_invalid_rows_csv_has_a_line_per_problem_with_its_fix(jobs, redis_client):
    job = jobs.create("/tmp/x.jsonl", None, {}, 10)
    redis_client.rpush(jobs.key(job.id, "invalid"), '{"line": 7, "external_id": "s:7", "errors": [{"field": "items", '
                       '"message": "an order needs an item", "hint": "add its lines"}]}')
    assert jobs.invalid_csv(job.id).splitlines() == ["line,external_id,field,problem,fix",
                                                     "7,s:7,items,an order needs an item,add its lines"]


def _job(**counts) -> Job:
    return Job(id="j", status="running", file="f", total=10_000, calls_per_order=3.0, started_at=1_000.0,
               counts={"sent": 0, "skipped": 0, "done": 0, "failed": 0, "cancelled": 0, "invalid": 0, **counts})


def test_the_eta_is_a_date_when_the_daily_quota_spreads_the_job_over_days():
    scope = {"backfill_allowed": 6_000, "day": {"backfill": 5_000, "limit": 10_000}}
    now = 1_798_761_600.0  # 2027-01-01 00:00 UTC
    # 9,000 orders left x 3 calls = 27,000 calls; 1,000 left today, then 6,000 a day: 5 more days
    assert eta(_job(done=1_000), [scope], now) == "2027-01-06 (the daily quota: 5 more day(s))"
    # without a daily limit: the rate so far (1,000 orders in 1,000 s) for the 9,000 left
    assert eta(_job(done=1_000), [], 2_000.0) == "1970-01-01 03:03 UTC"
    assert eta(_job(done=9_999, invalid=1), [scope], now) == "now"


def _aged(jobs, redis_client, status: str, days_ago: float, **fields) -> str:
    """A job recorded `days_ago` (its index score and times moved back), with `status`."""
    job = jobs.create("/tmp/x.jsonl", None, {}, 10)
    at = jobs.ledger.now() - days_ago * 86400
    redis_client.hset(jobs.key(job.id), mapping={"status": status, "created_at": at, **fields})
    redis_client.zadd(jobs.index_key, {job.id: at})
    return job.id


def test_trim_deletes_only_ended_jobs_past_retention_with_their_rows(jobs, redis_client):
    now = jobs.ledger.now()
    old_done = _aged(jobs, redis_client, "finished", 40, finished_at=now - 39 * 86400)
    redis_client.rpush(jobs.key(old_done, "invalid"), '{"line": 2, "errors": []}')
    old_cancelled = _aged(jobs, redis_client, "queued", 40)
    jobs.set_status(old_cancelled, "cancelled")  # cancelled now: its retention starts now
    old_failed = _aged(jobs, redis_client, "failed", 40)
    settling = _aged(jobs, redis_client, "cancelled", 40, finished_at=now - 39 * 86400)
    redis_client.sadd(jobs.key(settling, "inflight"), "o-1")  # its orders still finish: kept until settled
    paused = _aged(jobs, redis_client, "paused", 40)
    recent = _aged(jobs, redis_client, "finished", 40, finished_at=now - 86400)  # long job, finished yesterday
    new = jobs.create("/tmp/y.jsonl", None, {}, 10).id
    assert jobs.trim(0) == 0  # DONE_RETENTION_DAYS=0: kept for ever
    assert jobs.trim(30 * 86400) == 2
    left = {job.id for job in jobs.recent(50)}
    assert left == {old_cancelled, settling, paused, recent, new}
    assert not redis_client.exists(jobs.key(old_done)) and not redis_client.exists(jobs.key(old_done, "invalid"))
    assert not redis_client.exists(jobs.key(old_failed))
    assert jobs.trim(30 * 86400, limit=1) == 0  # what is due only, and nothing twice


def test_a_serving_feeder_trims_the_jobs_past_done_retention(jobs, redis_client, key_prefix):
    from producers.enqueue import Producer
    from producers.feeder import Feeder
    from tests.conftest import REDIS_URL
    from worker.settings import Settings

    settings = Settings(redis_url=REDIS_URL, key_prefix=key_prefix, done_retention_days=30)
    old = _aged(jobs, redis_client, "finished", 31, finished_at=jobs.ledger.now() - 31 * 86400)
    kept = _aged(jobs, redis_client, "finished", 29, finished_at=jobs.ledger.now() - 29 * 86400)
    Feeder(Producer(settings, jobs.ledger), jobs).serve(once=True)
    assert [job.id for job in jobs.recent()] == [kept] and jobs.get(old) is None


def test_jobs_list_and_show_as_json(jobs, redis_client, key_prefix):
    from click.testing import CliRunner

    from admin.cli import main
    from tests.conftest import REDIS_URL

    job = jobs.create("/data/orders.jsonl", "jsonl", {}, 10)
    redis_client.hset(jobs.key(job.id), mapping={"total": 4, "position": 2, "line": 3, "sent": 1, "invalid": 1})
    redis_client.sadd(jobs.key(job.id, "inflight"), "o-1")
    jobs.ledger.register("o-1", {"external_id": "o-1"}, "backfill", first_step="create_order")  # still in flight
    env = {"REDIS_URL": REDIS_URL, "KEY_PREFIX": key_prefix, "KEAP_API_KEY": "", "RATE_LIMITS": "off"}
    shown = CliRunner(env=env).invoke(main, ["jobs", "show", job.id, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert list(data) == ["id", "status", "file", "format", "window", "total", "position", "line", "counts",
                          "in_flight", "settled", "rate", "eta", "created_at", "started_at", "finished_at", "resumed",
                          "error"]
    assert (data["id"], data["status"], data["total"], data["position"], data["in_flight"], data["settled"]) == \
        (job.id, "queued", 4, 2, 1, 1)
    assert data["counts"] == {"sent": 1, "skipped": 0, "done": 0, "failed": 0, "cancelled": 0, "invalid": 1}
    listed = CliRunner(env=env).invoke(main, ["jobs", "list", "--json"])
    assert listed.exit_code == 0 and [j["id"] for j in json.loads(listed.output)] == [job.id]
    assert list(json.loads(listed.output)[0]) == list(data)
    missing = CliRunner(env=env).invoke(main, ["jobs", "show", "nope", "--json"])
    assert missing.exit_code == 1 and "no such job" in missing.output and "Traceback" not in missing.output
