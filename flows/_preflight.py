"""What every run checks before it leases anything: the state store opens at the right
schema, the export configuration fits the source, and Attentive answers ``/v1/me`` with the
API key (one cheap call, so a rotated key fails the run even with nothing queued).

The API key comes from ``ATTENTIVE_API_KEY`` or, when that is unset, from the Prefect
``Secret`` block named by ``ATTENTIVE_SYNC_API_KEY_BLOCK`` (default ``attentive-api-key``).
"""

from __future__ import annotations

import os
from typing import Any, cast

from prefect import get_run_logger
from prefect.blocks.system import Secret
from prefect.settings import PREFECT_API_URL
from prefect.states import Failed
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from attentive_sync.attentive import AccountInfo, AttentiveClient, AttentiveError
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.checks import ConfigurationError, check_against_source
from attentive_sync.engine.runtime import Runtime, shared_runtime
from attentive_sync.settings import AttentiveSettings, SyncSettings
from attentive_sync.store import Store
from attentive_sync.store.errors import StoreError

SECRET_BLOCK = "attentive-api-key"
# The key check fails fast: a second attempt rides out a blip, more would hide a bad host.
CHECK_ATTEMPTS = 2
CHECK_CONNECT_TIMEOUT = 3.0


class PreflightError(Exception):
    """A run cannot start; the message (one line) says what to fix."""


def stopped(exc: PreflightError) -> dict[str, int]:
    """End the run as Failed with the one-line reason. A flow that returns a state ends in
    it, so Prefect logs the reason, not a traceback of a mistake a person must fix."""
    get_run_logger().error("cannot run: %s", exc)
    return cast(dict[str, int], Failed(message=str(exc)))


def preflight(config: ExportConfig, log: bool = True) -> Runtime:
    """The checks above, in order; returns the run's runtime."""
    runtime = _open_runtime()
    try:
        check_against_source(runtime, config)
    except ConfigurationError as exc:
        raise PreflightError(str(exc)) from exc
    account = _check_api_key(runtime.client.settings)
    if log:
        get_run_logger().info(
            "checked: state store, configuration, API key of %s (%s)",
            account.company_name or "?",
            runtime.client.settings.base_url,
        )
    return runtime


def load_api_key_from_secret_block() -> None:
    """Put the Secret block's value in this process's environment (no key is set there).

    Blocks live on a Prefect server: with no ``PREFECT_API_URL`` there is none to ask (a
    temporary server would start only to find nothing), so the key must come from the
    environment.
    """
    if not PREFECT_API_URL.value():
        return
    name = os.environ.get("ATTENTIVE_SYNC_API_KEY_BLOCK", SECRET_BLOCK)
    try:
        # Called outside an event loop, so the sync/async dispatch returns the block itself.
        secret = cast("Secret[Any]", Secret.load(name))
    except ValueError:
        return  # no such block: the missing key is reported next
    os.environ["ATTENTIVE_API_KEY"] = str(secret.get())


def _open_runtime() -> Runtime:
    try:
        with Store.from_url(SyncSettings().db_url) as store:
            store.check_schema()
        if AttentiveSettings().api_key is None:
            load_api_key_from_secret_block()
        if AttentiveSettings().api_key is None:
            raise PreflightError(
                "no Attentive API key: set ATTENTIVE_API_KEY, or create a Prefect Secret block "
                f"named {os.environ.get('ATTENTIVE_SYNC_API_KEY_BLOCK', SECRET_BLOCK)!r}"
            )
        return shared_runtime()
    except ValidationError as exc:
        raise PreflightError(one_line(exc)) from exc
    except (StoreError, AttentiveError) as exc:
        raise PreflightError(str(exc)) from exc
    except (SQLAlchemyError, ArgumentError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise PreflightError(f"cannot open the state store {_safe_url()}: {reason}") from exc


def _check_api_key(settings: AttentiveSettings) -> AccountInfo:
    quick = settings.model_copy(
        update={"max_attempts": CHECK_ATTEMPTS, "connect_timeout": CHECK_CONNECT_TIMEOUT}
    )
    try:
        with AttentiveClient(quick) as client:
            return client.me()
    except AttentiveError as exc:
        raise PreflightError(f"Attentive API key check failed: {exc}") from exc


def _safe_url() -> str:
    url = SyncSettings().db_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def one_line(exc: ValidationError) -> str:
    """The first error of a pydantic ValidationError as ``field: message``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"
