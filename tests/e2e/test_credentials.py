"""Credentials never fail orders: an API key Keap refuses pauses a real worker fleet with one error, orders wait
(none fails), and `keap-orders auth resume` releases them once the key works; under OAuth a 401 left after the
one renewal, or a 403, parks the order for re-authorisation."""
from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from tests.conftest import SANDBOX_KEY
from tests.e2e.conftest import in_keap, order
from tests.e2e.test_liveness import wait_for
from worker.keap import ApiKeyAuth


def test_a_refused_api_key_pauses_the_fleet_with_one_error_and_auth_resume_releases_it(fleet, e2e_sandbox,
                                                                                        tmp_path):
    from admin.cli import main

    run = fleet()
    run.keeper()
    log = tmp_path / "worker.log"
    with open(log, "w") as errors:
        run.worker("w", concurrency=4, errors=errors, loglevel="INFO")
    e2e_sandbox.api_key = "KeapAK-the-key-was-rotated"  # Keap no longer takes the workers' key
    calls = e2e_sandbox.stats()["total"]
    ids = [f"{run.run_id}-k{i}" for i in range(20)]
    for ext in ids:
        run.producer.enqueue_order(order(ext), "backfill")
    wait_for(lambda: all(s and s.status == "waiting" for s in map(run.ledger.get, ids)), 60, "every order waiting")
    assert {run.ledger.get(ext).parked_reason for ext in ids} == {ApiKeyAuth.waiting}
    assert "KEAP_ACCESS_TOKEN" not in ApiKeyAuth.waiting and "auth resume" in ApiKeyAuth.waiting
    assert e2e_sandbox.stats()["total"] - calls <= 4  # the calls in flight when the first 401 came, no more
    refused = [json.loads(line) for line in log.read_text().splitlines()
               if line.startswith("{") and "Keap refused" in line and '"ERROR"' in line]
    assert len(refused) == 1 and "auth resume" in refused[0]["message"], refused

    cli = CliRunner(env=run.env)
    still = cli.invoke(main, ["auth", "resume"])
    assert still.exit_code == 1 and "still does not work" in still.output and SANDBOX_KEY not in still.output
    e2e_sandbox.api_key = SANDBOX_KEY  # fixed (in Keap here; with a new key: KEAP_API_KEY, workers restarted)
    resumed = cli.invoke(main, ["auth", "resume"])
    assert resumed.exit_code == 0 and "resumed 20 order(s)" in resumed.output, resumed.output
    run.wait(ids, 90)
    assert [in_keap(e2e_sandbox, ext) for ext in ids] == [(1, 1)] * len(ids)


def test_under_oauth_a_401_left_after_the_renewal_parks_the_order_for_reauthorisation(sandbox, redis_client,
                                                                                     key_prefix):
    # The race of issue 16: a 401, another worker has refreshed already, the request goes once more with the new
    # token and gets 401 again (the app was revoked meanwhile). It failed the order; now it waits.
    from worker import runner
    from worker.contract import parse_order
    from worker.keap import BearerAuth, KeapClient
    from worker.ledger import Ledger
    from worker.settings import Settings
    from worker.steps.base import StepContext

    renewals = []
    auth = BearerAuth(lambda: "revoked-" + uuid.uuid4().hex, lambda used: renewals.append(used) or True)
    ctx = StepContext(keap=KeapClient(sandbox.base_url, auth), ledger=Ledger(redis_client, key_prefix))
    ext = f"{key_prefix}-oauth"
    ticket = ctx.ledger.register(ext, parse_order(order(ext)).model_dump(mode="json"), "live",
                                 first_step="create_order")[3]
    runner.run_step(ctx, Settings(queued_stall_seconds=60), "create_order", ext, ticket=ticket)
    state = ctx.ledger.get(ext)
    assert (state.status, state.parked_reason) == ("waiting", runner.REAUTH), state.as_dict()
    assert ctx.ledger.held_count("reauth") == 1 and len(renewals) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_each_kind_of_credential_names_its_own_fix(status):
    from worker.keap import BearerAuth, CredentialRefused, error_from_response

    error = error_from_response(status, {"message": "no"}, None, method="GET", path="/v2/orders")
    oauth = BearerAuth(lambda: "t", lambda used: False).refused(error)
    key = ApiKeyAuth("KeapAK-x").refused(error)
    bare = BearerAuth(lambda: "t").refused(error)
    assert all(isinstance(e, CredentialRefused) and e.status == status for e in (oauth, key, bare))
    assert "auth login" in oauth.waiting and "KEAP_API_KEY" not in str(oauth) and "KEAP_ACCESS_TOKEN" not in str(oauth)
    assert "KEAP_API_KEY" in str(key) and "KEAP_ACCESS_TOKEN" not in str(key) and "auth resume" in key.waiting
    assert "KEAP_ACCESS_TOKEN" in str(bare) and "KEAP_API_KEY" not in str(bare)
