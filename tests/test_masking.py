from attentive_sync.masking import mask_email, mask_payload, mask_phone, mask_text


def test_phone_and_email_masked():
    assert mask_phone("+14155552671") == "+*********71"
    assert mask_email("jane@example.com") == "j***@example.com"


def test_payload_masked_deeply_and_originals_untouched():
    payload = {"identifiers": {"phone": "+14155552671", "email": "jane@example.com"}, "n": 3}
    masked = mask_payload(payload)
    assert "4155552671" not in str(masked) and "jane@" not in str(masked)
    assert masked["n"] == 3
    assert payload["identifiers"]["phone"] == "+14155552671"


def test_free_text_masked():
    text = mask_text("user jane@example.com with phone +1 415 555 2671 failed")
    assert "jane@" not in text and "555 2671" not in text


def test_dates_and_timestamps_stay_readable():
    text = "occurred 2026-11-23T01:37:50.068232+00:00, expires 2026-11-21, cost 12.50"
    assert mask_text(text) == text


def test_national_and_invalid_numbers_masked_too():
    assert "555" not in mask_text("call (415) 555-2671 or 5551234")


def test_numbers_no_region_accepts_are_masked_too():
    text = mask_text("phone +1415555267 is not a valid number; also 07700 900123 and 5551234")
    assert "555267" not in text and "900123" not in text and "5551234" not in text
