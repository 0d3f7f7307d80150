"""Flow parameters as a person types them: dates wherever a moment is, the same in every flow,
and a form in the Prefect UI that describes every parameter."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from prefect.utilities.callables import parameter_schema
from support.program import CONFIG

from attentive_sync.flows.registry import FLOWS, FlowRunError, validate_parameters

MIDNIGHT = datetime(2026, 10, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("given", "moment"),
    [
        ("2026-10-15", MIDNIGHT),
        (date(2026, 10, 15), MIDNIGHT),
        ("2026-10-15T00:00:00", MIDNIGHT),
        ("2026-10-15T02:00:00+02:00", MIDNIGHT),
    ],
)
def test_reward_reminder_takes_a_date_or_a_moment_in_utc(given, moment):
    params = validate_parameters(FLOWS["reward-reminder"], {"config": CONFIG, "as_of": given})
    assert params["as_of"] == moment and params["as_of"].tzinfo is not None


@pytest.mark.parametrize(
    "given", ["2026-10-15", "2026-10-15T23:30:00-00:00", "2026-10-16T01:00:00+02:00", MIDNIGHT]
)
def test_expiry_notice_takes_a_date_or_a_moment_as_its_utc_day(given):
    params = validate_parameters(FLOWS["expiry-notice"], {"config": CONFIG, "as_of": given})
    assert params["as_of"] == date(2026, 10, 15)


def test_a_moment_that_is_no_date_is_named():
    with pytest.raises(FlowRunError, match="parameter as_of"):
        validate_parameters(FLOWS["reward-reminder"], {"config": CONFIG, "as_of": "soon"})


@pytest.mark.parametrize("name", list(FLOWS))
def test_every_parameter_has_a_description_in_the_ui_form(name):
    schema = parameter_schema(FLOWS[name].fn).model_dump_for_openapi()
    missing = [p for p, spec in schema["properties"].items() if not spec.get("description")]
    assert not missing, f"{name}: no description for {missing}"
    assert "config" in schema["required"]


@pytest.mark.parametrize(
    ("fraction", "elapsed", "line"),
    [
        (0.25, 10.0, "25.0% done (vip), 2.50%/s, about 30s left"),
        (0.5, 3600.0, "50.0% done (vip), 0.01%/s, about 1h00m left"),
        (0.0, 5.0, "0.0% done (vip), 0.00%/s, time left unknown"),
        (1.0, 75.0, "done (vip) in 1m15s"),
    ],
)
def test_backfill_progress_reads_as_rate_and_time_left(fraction, elapsed, line):
    from attentive_sync.flows._shell import progress_line

    assert progress_line(fraction, elapsed, "vip") == line
