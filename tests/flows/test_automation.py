"""The shipped automation is one Prefect accepts, and it watches every attentive-sync flow."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.events.schemas.automations import AutomationCore

from attentive_sync.flows.registry import FLOWS

AUTOMATION = Path(__file__).resolve().parents[2] / "deployments" / "automation.yaml"


def test_the_automation_notifies_on_failed_or_crashed_runs_of_every_flow():
    automation = AutomationCore.model_validate(yaml.safe_load(AUTOMATION.read_text()))
    trigger = automation.trigger
    assert set(trigger.expect) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    (related,) = (
        trigger.match_related
        if isinstance(trigger.match_related, list)
        else [trigger.match_related]
    )
    assert set(related["prefect.resource.name"]) == set(FLOWS)
    assert [action.type for action in automation.actions] == ["send-notification"]
