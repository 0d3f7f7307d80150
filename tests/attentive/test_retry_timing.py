import pytest

from attentive_sync.attentive import BackoffPolicy, parse_retry_after, retry_delay

POLICY = BackoffPolicy(max_attempts=6, base=0.5, cap=8.0)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "headers", "rand", "expected"),
    [
        (1, 2.0, {}, 0.0, 2.0),  # Retry-After wins
        (1, 60.0, {}, 0.0, 8.0),  # ... but is capped
        (1, None, {"x-ratelimit-remaining": "0"}, 0.5, 1.0),  # window spent: next second
        (1, None, {"x-ratelimit-remaining": "0"}, 0.0, 0.5),
        (1, None, {"x-ratelimit-remaining": "7"}, 0.0, 0.25),  # headers say nothing: backoff
        (1, None, {}, 0.0, 0.25),
        (1, None, {}, 1.0, 0.5),
        (3, None, {}, 1.0, 2.0),
        (10, None, {}, 1.0, 8.0),  # capped
        (10, None, {}, 0.0, 4.0),  # never zero
    ],
)
def test_retry_delay_table(attempt, retry_after, headers, rand, expected):
    assert retry_delay(attempt, POLICY, retry_after, headers, lambda: rand) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("soon", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_retry_after(value, expected):
    now = 1445412480.0  # 2015-10-21 07:28:00 GMT
    assert parse_retry_after(value, now) == expected
