"""``campaign check``, ``preview`` and ``test-send`` on a real workspace, store and relay."""

from __future__ import annotations

import csv
import subprocess
import sys
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dispatcher.cli import app
from tests.support.relay import RecordingRelay

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def write_campaign(root: Path, name: str, **lines: str) -> str:
    base = {
        "name": name, "from": "news@news.example.com", "subject": "'Hi {{ first_name }}'",
        "template": "templates/weekly.mjml", "audience": "{lists: [weekly]}",
        "variables": "{issue: 1, edition_date: today}",
    }
    base.update(lines)
    (root / "campaigns" / f"{name}.yaml").write_text(
        "".join(f"{k}: {v}\n" for k, v in base.items()), encoding="utf-8")
    return f"campaigns/{name}.yaml"


def test_check_renders_everyone_of_the_example(imported: Path) -> None:
    result = invoke("campaign", "check", "campaigns/weekly.yaml")
    assert result.exit_code == 0, result.output
    assert "300 recipient(s) in the audience, 300 checked, 300 rendered" in result.output


def test_check_counts_missing_attributes(imported: Path) -> None:
    (imported / "templates" / "needs.html").write_text(
        "<p>{{ nickname }} {{ shoe_size }} {{ first_name }}</p><a href='{{ unsubscribe_url }}'>"
        "Unsubscribe</a>", encoding="utf-8")
    path = write_campaign(imported, "needs", template="templates/needs.html")
    result = runner.invoke(app, ["campaign", "check", path, "--sample", "10"])
    assert result.exit_code == 1
    assert "10 checked, 0 rendered" in result.output
    assert "missing attribute 'nickname' for 10 recipient(s)" in result.stderr
    assert "missing attribute 'shoe_size' for 10 recipient(s)" in result.stderr


def test_check_refuses_templates_without_an_unsubscribe_link(imported: Path) -> None:
    (imported / "templates" / "bare.html").write_text("<p>Hi {{ first_name }}</p>",
                                                      encoding="utf-8")
    path = write_campaign(imported, "bare", template="templates/bare.html")
    result = invoke("campaign", "check", path, "--sample", "3")
    assert result.exit_code == 1
    assert "3 message(s) have no visible unsubscribe link" in result.stderr


def test_check_narrows_the_audience_with_where(imported: Path) -> None:
    path = write_campaign(imported, "pro", audience="{lists: [weekly], where: \"plan == 'pro'\"}")
    result = invoke("campaign", "check", path)
    assert result.exit_code == 0, result.output
    expected = sum(1 for line in (imported / "lists/weekly.csv").read_text().splitlines()
                   if line.split(",")[4] == "pro")
    assert f"{expected} recipient(s) in the audience" in result.output


@pytest.mark.parametrize(("lines", "message"), [
    ({"subjet": "x"}, "campaigns/bad.yaml:7:1: unknown key 'subjet' (did you mean 'subject'?)"),
    ({"template": "templates/none.mjml"},
     "campaigns/bad.yaml:4:11: template file not found: templates/none.mjml"),
    ({"audience": "{lists: [nobody]}"}, "unknown list 'nobody' in audience"),
    ({"from": "'a@@b'"}, "campaigns/bad.yaml:2:7: from.address: 'a@@b' is not a valid email"),
    ({"relays": "[capture, nonsense]"}, "relay URL 'nonsense': scheme must be smtp"),
])
def test_check_explains_broken_campaigns(imported: Path, lines: dict[str, str],
                                         message: str) -> None:
    path = write_campaign(imported, "bad", **lines)
    result = invoke("campaign", "check", path)
    assert result.exit_code == 1
    assert message in str(result.exception)


def test_check_points_at_the_template_line_of_a_jinja_error(imported: Path) -> None:
    (imported / "templates" / "broken.mjml").write_text(
        "<mjml>\n<mj-body>\n<mj-text>\n{% if x %}\nno end\n</mj-text>\n</mj-body>\n</mjml>\n",
        encoding="utf-8")
    path = write_campaign(imported, "broken", template="templates/broken.mjml")
    proc = subprocess.run([sys.executable, "-c", "from dispatcher.cli import main; main()",
                           "campaign", "check", path], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert "templates/broken.mjml:4: Unexpected end of template" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_preview_for_one_subscriber_writes_parsable_files(imported: Path) -> None:
    email = (imported / "lists/weekly.csv").read_text().splitlines()[5].split(",")[0]
    result = invoke("preview", "campaigns/weekly.yaml", "--out", "p", "--subscriber", email)
    assert result.exit_code == 0, result.output
    (eml,) = (imported / "p").glob("*.eml")
    (html,) = (imported / "p").glob("*.html")
    msg = BytesParser(policy=policy.strict).parsebytes(eml.read_bytes())
    assert msg["To"].addresses[0].addr_spec == email
    assert msg["Return-Path"].startswith("<bounces+")
    assert "Unsubscribe" in html.read_text(encoding="utf-8")
    missing = invoke("preview", "campaigns/weekly.yaml", "--subscriber", "no@one.example")
    assert missing.exit_code == 1
    assert "no@one.example is not in the campaign's audience" in str(missing.exception)


def test_test_send_delivers_one_message_per_variant_to_each_seed(
        imported: Path, relay: RecordingRelay) -> None:
    path = write_campaign(imported, "ab", ab_test="{variants: [{name: a, subject: 'A!', "
                          "percent: 50}, {name: b, subject: 'B!', percent: 50}]}")
    result = invoke("test-send", path, "--to", "seed1@example.org", "--to", "seed2@example.org",
                    "--relay", relay.url)
    assert result.exit_code == 0, result.output
    got = sorted((m.rcpt_tos[0], str(m.message()["Subject"])) for m in relay.received)
    assert got == [("seed1@example.org", "A!"), ("seed1@example.org", "B!"),
                   ("seed2@example.org", "A!"), ("seed2@example.org", "B!")]
    bad = invoke("test-send", path, "--to", "not-an-address", "--relay", relay.url)
    assert bad.exit_code == 1 and "--to: 'not-an-address' is not a valid" in str(bad.exception)


def test_hostile_list_values_cannot_add_recipients_on_the_wire(
        workspace: Path, relay: RecordingRelay) -> None:
    rows = [
        ("ok@example.com", "Ok", "Berlin"),
        ("eve@example.com", "Eve\r\nBcc: victim@example.net", "Rome"),
        ("mal@example.com", "Mal", "Paris\r\nBcc: victim@example.net\r\n\r\nforged body"),
    ]
    with (workspace / "lists" / "hostile.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "name", "first_name", "city", "plan"])
        for email, name, city in rows:
            writer.writerow([email, name, name, city, "free"])
    imported = runner.invoke(app, ["import", "lists/hostile.csv", "--list", "weekly"])
    assert imported.exit_code == 0, imported.output
    result = runner.invoke(app, ["send", "campaigns/weekly.yaml", "--relay", relay.url])
    assert result.exit_code in (0, 3), result.output
    delivered = sorted(r for m in relay.received for r in m.rcpt_tos)
    assert "victim@example.net" not in delivered
    assert set(delivered) <= {"ok@example.com", "eve@example.com", "mal@example.com"}
    assert "ok@example.com" in delivered
    for item in relay.received:
        msg = BytesParser(policy=policy.strict).parsebytes(item.data)
        assert msg.get_all("Bcc") is None
        assert [a.addr_spec for a in msg["To"].addresses] == item.rcpt_tos
        assert len(msg.get_all("Subject") or []) == 1


def test_check_warns_about_filter_attributes_nobody_has(imported: Path) -> None:
    path = write_campaign(imported, "typo", audience="{lists: [weekly], where: \"citty == 'Rome' "
                          "or plan == 'pro'\"}")
    result = invoke("campaign", "check", path, "--sample", "2")
    assert "warning: no subscriber has the attribute 'citty' that audience.where uses" in \
        result.stderr
    assert "'plan'" not in result.stderr
