"""``events ingest`` and the intake's CLI guard rails."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from typer.testing import CliRunner

from attentive_sync.cli import app
from attentive_sync.intake import ingest_jsonl, sign, verify
from attentive_sync.intake.signing import SignatureRejected
from attentive_sync.store import Store
from tests.intake.conftest import envelope, stored_events

runner = CliRunner()


def _write_lines(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_lines(
        path,
        [
            json.dumps(envelope("evt_1")),
            "{this is not json",
            json.dumps(envelope("evt_2", topic="reward_claimed")),
            "",
            json.dumps(envelope("evt_3", topic="birthday_bonus")),
            json.dumps(envelope("evt_1")),
            json.dumps(envelope("evt_4", customer_id="abc")),
        ],
    )
    return path


def test_ingest_stores_good_lines_and_reports_bad_ones_by_number(store: Store, events_file) -> None:
    report = ingest_jsonl(store.events, events_file)
    assert (report.stored, report.duplicates) == (2, 1)
    assert [bad.line_number for bad in report.invalid] == [2, 5, 7]
    assert "birthday_bonus" in report.invalid[1].reason
    assert "customer_id" in report.invalid[2].reason
    assert stored_events(store) == 2
    assert ingest_jsonl(store.events, events_file).stored == 0


def test_events_ingest_command_prints_counts_and_bad_lines(store: Store, events_file) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["events", "ingest", str(events_file), "--url", url])
    assert result.exit_code == 1
    assert "stored 2, duplicates 1, invalid 3" in result.stdout
    assert "line 2:" in result.stderr and "line 5:" in result.stderr


def test_events_ingest_command_rejects_a_missing_file_and_an_uninitialised_store(
    tmp_path,
) -> None:
    missing = runner.invoke(app, ["events", "ingest", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "is not a file" in missing.stderr
    events = tmp_path / "one.jsonl"
    _write_lines(events, [json.dumps(envelope())])
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = runner.invoke(app, ["events", "ingest", str(events), "--url", fresh])
    assert result.exit_code == 1 and "db init" in result.stderr


def test_intake_serve_refuses_to_start_without_a_secret(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file to read a secret from
    monkeypatch.delenv("ATTENTIVE_SYNC_INTAKE_SECRET", raising=False)
    result = runner.invoke(app, ["intake", "serve", "--url", f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 1
    assert "ATTENTIVE_SYNC_INTAKE_SECRET" in result.stderr


@given(
    secret=st.text(min_size=1).filter(lambda s: not s.startswith("whsec_")),
    body=st.binary(),
    salt=st.integers(0, 10_000),
)
def test_a_signature_verifies_its_message_and_no_other(secret: str, body: bytes, salt: int) -> None:
    key, now = SecretStr(secret), 1_700_000_000
    header = sign(key, "msg_1", now, body)
    verify(key, body, "msg_1", str(now), header, now=now)
    tampered = body + b"x" if not body else bytes([body[0] ^ 1]) + body[1:]
    for args in (
        (key, tampered, "msg_1", str(now)),
        (key, body, "msg_2", str(now)),
        (key, body, "msg_1", str(now + 1)),
        (SecretStr(secret + str(salt)), body, "msg_1", str(now)),
    ):
        with pytest.raises(SignatureRejected):
            verify(*args, header, now=now)


def test_the_standard_webhooks_reference_signature() -> None:
    """The example from the Standard Webhooks specification's test vectors."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_an_id_reused_for_another_event_is_a_bad_line_not_a_silent_drop(
    store: Store, tmp_path
) -> None:
    first = tmp_path / "first.jsonl"
    _write_lines(first, [json.dumps(envelope("evt_1")), json.dumps(envelope("evt_2"))])
    assert ingest_jsonl(store.events, first).stored == 2
    second = tmp_path / "second.jsonl"
    _write_lines(
        second,
        [
            json.dumps(envelope("evt_1")),  # the same event again: a duplicate
            json.dumps(envelope("evt_2", topic="reward_claimed")),  # another event, same id
            json.dumps(envelope("evt_3")),
            json.dumps(envelope("evt_3", topic="reward_claimed")),  # reused within the file
        ],
    )
    report = ingest_jsonl(store.events, second)
    assert (report.stored, report.duplicates) == (1, 1)
    assert [(bad.line_number, bad.reason) for bad in report.invalid] == [
        (2, "id 'evt_2' was already used for another event"),
        (4, "id 'evt_3' was already used for another event"),
    ]
    assert stored_events(store) == 3
