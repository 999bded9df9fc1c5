"""Careless campaign files and templates: the message names the file and line, good work is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatcher.campaigns.loader import load_campaign
from dispatcher.errors import CampaignError, TemplateError
from dispatcher.render.template import load_html
from tests.test_robustness_config import failed, run

runner = CliRunner()

BASE = ("name: x\nfrom: news@news.example.com\nsubject: Hi\ntemplate: templates/weekly.mjml\n"
        "audience: {lists: [weekly]}\n")


def campaign_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignError) as caught:
        load_campaign(path)
    return str(caught.value)


def test_a_key_written_twice_is_an_error_not_a_silent_choice(tmp_path: Path) -> None:
    # YAML keeps the last one: the subject the marketer wrote first was dropped unseen.
    error = campaign_error(tmp_path, BASE + "variables: {issue: 1}\nsubject: Second thoughts\n")
    assert error == (f"{tmp_path / 'c.yaml'}:7:1: duplicate key 'subject' (first at line 3; "
                     "only one of them would be used)")
    error = campaign_error(tmp_path, BASE + "variables:\n  issue: 1\n  issue: 2\n")
    assert error.startswith(f"{tmp_path / 'c.yaml'}:8:3: duplicate key 'issue'")


def test_yaml_anchors_still_work_but_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(BASE + "variables: {issue: &n 48, again: *n, list: &l [1, 2], l2: *l}\n",
                    encoding="utf-8")
    assert load_campaign(path).variables == {"issue": 48, "again": 48, "list": [1, 2],
                                             "l2": [1, 2]}
    levels = ["  a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"  {n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi",
                                                                   strict=True)]
    error = campaign_error(tmp_path, BASE + "variables:\n" + "\n".join(levels) + "\n")
    assert "more than 100,000 values once YAML aliases are expanded" in error
    assert error.startswith(f"{tmp_path / 'c.yaml'}:")


def test_values_nested_thousands_deep_are_refused(tmp_path: Path) -> None:
    error = campaign_error(tmp_path, BASE + "variables: {a: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert error == f"{tmp_path / 'c.yaml'}: not a campaign: values nested too deeply"


def test_an_mjml_element_the_engine_does_not_know_is_an_error_at_its_line(
        tmp_path: Path) -> None:
    """The MJML engine copies <mj-txt> into the HTML as it is: a broken layout for everyone."""
    path = tmp_path / "t.mjml"
    path.write_text("<mjml>\n<mj-body>\n<!-- <mj-old> was here -->\n<mj-section>\n"
                    "<mj-column>\n  <mj-txt>Hi {{ name }}</mj-txt>\n</mj-column>\n"
                    "</mj-section>\n</mj-body>\n</mjml>\n", encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load_html(path, shown="templates/t.mjml")
    assert str(caught.value) == ("templates/t.mjml:6: MJML error: unknown element <mj-txt> "
                                 "(did you mean <mj-text>?)")
    # Every element the engine does know compiles away; a commented-out one is no error.
    path.write_text(
        "<mjml><mj-head><mj-title>t</mj-title><mj-preview>p</mj-preview><mj-attributes>"
        "<mj-all font-family='Arial'/><mj-class name='b' color='red'/></mj-attributes>"
        "<mj-style>.a{color:red}</mj-style></mj-head><mj-body><mj-wrapper><mj-section>"
        "<mj-group><mj-column><mj-text>a</mj-text><mj-button href='#'>b</mj-button>"
        "<mj-image src='x.png'/><mj-divider/><mj-spacer/><mj-table><tr><td>1</td></tr>"
        "</mj-table><mj-raw><p>raw</p></mj-raw><mj-social><mj-social-element name='facebook' "
        "href='#'>f</mj-social-element></mj-social><mj-navbar><mj-navbar-link href='#'>n"
        "</mj-navbar-link></mj-navbar><mj-accordion><mj-accordion-element><mj-accordion-title>"
        "t</mj-accordion-title><mj-accordion-text>x</mj-accordion-text></mj-accordion-element>"
        "</mj-accordion><mj-carousel><mj-carousel-image src='a.png'/></mj-carousel></mj-column>"
        "</mj-group></mj-section></mj-wrapper><mj-hero background-url='x.png'><mj-text>h"
        "</mj-text></mj-hero><!-- <mj-old> --></mj-body></mjml>", encoding="utf-8")
    load_html(path)


def test_preview_writes_everyone_who_renders_and_names_who_does_not(imported: Path) -> None:
    (imported / "templates" / "pro.html").write_text(
        "<p>Hi {{ first_name }}{% if plan == 'pro' %}, size {{ shoe_size }}{% endif %}</p>"
        "<a href='{{ unsubscribe_url }}'>Unsubscribe</a>", encoding="utf-8")
    (imported / "campaigns" / "pro.yaml").write_text(
        BASE.replace("templates/weekly.mjml", "templates/pro.html"), encoding="utf-8")
    result = run("preview", "campaigns/pro.yaml", "--out", "previews", "--limit", "20",
                 cwd=imported)
    stderr = failed(result)
    pro = [line for line in stderr.splitlines() if "'shoe_size' is undefined" in line]
    assert pro and all(line.startswith("templates/pro.html: ") for line in pro)
    assert f"campaigns/pro.yaml: {len(pro)} recipient(s) could not be rendered" in stderr
    written = sorted(p.name for p in (imported / "previews").glob("*.eml"))
    assert len(written) == 20 - len(pro)
    assert f"wrote {20 - len(pro)} preview(s)" in result.stdout


def test_preview_into_a_file_or_under_one_says_so(imported: Path) -> None:
    (imported / "notes.txt").write_text("not a folder\n", encoding="utf-8")
    stderr = failed(run("preview", "campaigns/weekly.yaml", "--out", "notes.txt/previews",
                        cwd=imported))
    assert "notes.txt/previews: cannot make the preview folder: Not a directory" in stderr


def test_schedule_errors_from_the_campaign_point_into_it(imported: Path) -> None:
    text = (imported / "campaigns" / "weekly.yaml").read_text(encoding="utf-8")
    (imported / "campaigns" / "cron.yaml").write_text(
        text + "schedule:\n  cron: '61 9 * * mon'\n", encoding="utf-8")
    stderr = failed(run("schedule", "campaigns/cron.yaml", cwd=imported))
    line = text.count("\n") + 2
    assert f"campaigns/cron.yaml:{line}:9: cron '61 9 * * mon': " in stderr
    (imported / "campaigns" / "past.yaml").write_text(
        text + "schedule:\n  at: 2001-01-01T09:00:00Z\n", encoding="utf-8")
    stderr = failed(run("schedule", "campaigns/past.yaml", cwd=imported))
    assert f"campaigns/past.yaml:{line}:7: schedule.at: 2001-01-01 09:00 UTC" in stderr
    stderr = failed(run("schedule", "campaigns/weekly.yaml", "--at", "2001-01-01T09:00",
                        cwd=imported))
    assert "error: --at: 2001-01-01 09:00 UTC" in stderr


def test_send_points_at_a_missing_template_in_the_campaign_and_queues_nothing(
        imported: Path) -> None:
    (imported / "campaigns" / "gone.yaml").write_text(
        BASE.replace("templates/weekly.mjml", "templates/gone.mjml"), encoding="utf-8")
    stderr = failed(run("send", "campaigns/gone.yaml", cwd=imported))
    assert "campaigns/gone.yaml:4:11: template file not found: templates/gone.mjml" in stderr
    result = run("status", "--json", cwd=imported)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["campaigns"] == []
