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
