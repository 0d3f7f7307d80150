"""Why a record can never be sent: reason codes shared by validation, the quarantine and reports."""

from __future__ import annotations


class RecordRejected(Exception):
    """A record that can never succeed as it is. It goes to the quarantine, its batch goes on.

    ``detail`` is free of personal data: it names the field and the rule, never the value.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


NO_IDENTIFIER = "no_identifier"
INVALID_PHONE = "invalid_phone"
INVALID_IDENTIFIER = "invalid_identifier"
INVALID_EMAIL = "invalid_email"
INVALID_ATTRIBUTE = "invalid_attribute"
INVALID_EVENT = "invalid_event"
REJECTED_BY_ATTENTIVE = "rejected_by_attentive"
BAD_SOURCE_VALUE = "bad_source_value"
