import httpx
import pytest
import respx
from pydantic import ValidationError

from attentive_sync.attentive import ServerError
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.delivery.batching import Batcher
from attentive_sync.engine.delivery.submit import submit_isolating
from attentive_sync.engine.mapping import Mapper

CONFIG = ExportConfig(
    audiences=["vip", "newsletter"],
    identifier_mappings={"phone": "phone", "email": "email"},
    extra_identifiers=["loyalty_id"],
    attribute_mappings={"first_name": "firstName", "date_of_birth": "dateOfBirth"},
    custom_attributes=["favorite_categories", "tier"],
)


def row(**kw):
    base = {
        "customer_id": 42,
        "phone": "(415) 555-2671",
        "email": None,
        "loyalty_id": "L42",
        "first_name": "Jane",
        "date_of_birth": "1990-05-17",
        "favorite_categories": '["shoes","hats"]',
        "tier": "Gold",
    }
    base.update(kw)
    return base


def test_customer_maps_to_bulk_user_with_audience_attribute():
    user = Mapper(CONFIG).map(row(), {"vip": True})
    assert user.customer_id == 42
    assert user.to_wire() == {
        "identifiers": {
            "phone": "+14155552671",
            "customIdentifiers": [{"key": "loyalty_id", "value": "L42"}],
        },
        "attributes": {
            "firstName": "Jane",
            "demographic": {"dateOfBirth": "1990-05-17"},
            "custom": {"favorite_categories": "shoes,hats", "tier": "Gold", "vip": True},
        },
    }


def test_exit_sets_false():
    assert Mapper(CONFIG).map(row(), {"vip": False}).attributes.custom["vip"] is False


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"phone": "5551234"}, "invalid_phone"),
        ({"phone": None, "email": None, "loyalty_id": None}, "no_identifier"),
    ],
)
def test_unsendable_customer_rejected_with_reason(fields, code):
    with pytest.raises(RecordRejected) as info:
        Mapper(CONFIG).map(row(**fields), {"vip": True})
    assert info.value.code == code


def test_missing_source_fields_reported():
    assert Mapper(CONFIG).missing_fields({"customer_id", "phone", "email"}) == [
        "date_of_birth",
        "favorite_categories",
        "first_name",
        "loyalty_id",
        "tier",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"identifier_mappings": {}},
        {"audiences": ["bad slug!"]},
        {"batch_size": 257},
        {"identifier_mappings": {"a": "phone", "b": "phone"}},
        {"audiences": ["vip"], "custom_attributes": ["vip"]},
        {"default_region": "XX"},
    ],
)
def test_bad_configuration_has_a_clear_error(kwargs):
    ExportConfig(identifier_mappings={"phone": "phone"})
    with pytest.raises(ValidationError):
        ExportConfig(**{"identifier_mappings": {"phone": "phone"}, **kwargs})


def test_identifier_mappings_are_required_and_the_region_is_a_choice():
    with pytest.raises(ValidationError, match="identifier_mappings"):
        ExportConfig()
    schema = ExportConfig.model_json_schema()
    assert schema["required"] == ["identifier_mappings"]
    regions = schema["properties"]["default_region"]["enum"]
    assert "US" in regions and "GB" in regions and "XX" not in regions
    lower = ExportConfig(identifier_mappings={"phone": "phone"}, default_region="gb")
    assert lower.default_region == "GB"


def test_batcher_flushes_when_full():
    b = Batcher(max_size=3)
    closed = [batch for i in range(7) for batch in b.add(i, i)]
    assert closed == [[0, 1, 2], [3, 4, 5]] and b.drain() == [6]


def test_batcher_flushes_early_on_second_change_for_same_user():
    b = Batcher(max_size=256)
    assert b.add(42, "enter") == []
    assert b.add(7, "x") == []
    assert b.add(42, "exit") == [["enter", "x"]]
    assert b.drain() == ["exit"] and b.early_flushes == 1


@respx.mock
def test_whole_request_400_isolates_the_bad_record(make_client):
    mapper = Mapper(CONFIG)
    users = [
        mapper.map(row(customer_id=i, phone=f"+1415555{i:04d}"), {"vip": True}) for i in range(1, 9)
    ]
    poison = "+14155550005"

    def answer(request):
        body = request.content.decode()
        if poison in body:
            return httpx.Response(400, json={"error": {"id": 1, "message": "bad"}})
        return httpx.Response(202, json={"batchJobId": f"job-{body.count('identifiers')}"})

    respx.post("https://api.attentivemobile.com/v2/bulk/user/attributes").mock(side_effect=answer)
    outcome = submit_isolating(make_client(), users)
    assert [u.customer_id for u, _ in outcome.rejected] == [5]
    sent = sorted(u.customer_id for job in outcome.jobs for u in job.users)
    assert sent == [1, 2, 3, 4, 6, 7, 8]
    assert outcome.requests == 7  # 1 + 2 + 2 + 2 for 8 users with one poison


@respx.mock
def test_parts_accepted_before_a_failure_are_reported_at_once(make_client):
    mapper = Mapper(CONFIG)
    users = [
        mapper.map(row(customer_id=i, phone=f"+1415555{i:04d}"), {"vip": True}) for i in range(1, 5)
    ]
    answers = iter(
        [
            httpx.Response(400, json={"error": {"id": 1, "message": "bad"}}),
            httpx.Response(202, json={"batchJobId": "left"}),
            httpx.Response(503),
        ]
    )
    respx.post("https://api.attentivemobile.com/v2/bulk/user/attributes").mock(
        side_effect=lambda request: next(answers, httpx.Response(503))
    )
    recorded = []
    with pytest.raises(ServerError):
        submit_isolating(make_client(max_attempts=1), users, recorded.append)
    assert [job.job_id for job in recorded] == ["left"]
    assert [u.customer_id for u in recorded[0].users] == [1, 2]
