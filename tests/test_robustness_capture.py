"""The capture relay and relay URLs when the ground moves: an outbox that cannot be written,
a URL that does not even split."""

from __future__ import annotations

import shutil
import smtplib
from pathlib import Path

import pytest

from dispatcher.errors import ConfigError
from dispatcher.smtp.capture import CaptureRelay
from dispatcher.smtp.relay import parse_relay


def test_an_outbox_that_is_a_file_is_named_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "outbox").write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        CaptureRelay(tmp_path / "outbox")
    assert str(caught.value).startswith(f"{tmp_path / 'outbox'}: the capture relay cannot write")


def test_a_message_the_capture_relay_cannot_file_is_deferred_not_bounced(
        tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    with CaptureRelay(outbox) as relay:
        # The folder disappears under the running relay (a full or unmounted disk alike).
        shutil.rmtree(outbox)
        outbox.write_text("in the way", encoding="utf-8")
        host, port = relay.url.removeprefix("smtp://").rsplit(":", 1)
        with (smtplib.SMTP(host.strip("[]"), int(port), timeout=10) as client,
              pytest.raises(smtplib.SMTPDataError) as caught):
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n")
    assert caught.value.smtp_code == 451
    assert b"cannot file the message" in caught.value.smtp_error


def test_a_relay_url_that_does_not_split_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"relay URL 'smtps://\[::1'"):
        parse_relay("smtps://[::1")
