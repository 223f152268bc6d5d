"""The web page in a real browser (Debian's chromium through playwright), DESIGN §13.

One browser and one ``bollard serve`` for the module; the tests run in order and build on
each other like a person's session: log in, upload and install a zip, enter credentials
and test them, run a read, approve a write, reject one, watch a broken integration show up
on the list, read the log, manage tokens, log out. Every page is checked with axe-core (no
serious or critical violation) and by keyboard (Tab reaches every control, every
``<details>`` opened), and saved as a screenshot in tests/web/screenshots/ (git-ignored);
a page's later states (a test report, a run's result) are saved as screenshots too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.browser import axe_violations, require_browser, screenshot, unreachable_by_keyboard
from tests.support.integrations import rest_manifest, write_integration
from tests.support.web import GOOD, Site
from tests.support.zips import folder_zip

try:
    from playwright.sync_api import expect
except ImportError:  # a skip, except in CI (BOLLARD_REQUIRE_BROWSER=1), where it fails
    if require_browser():
        raise
    pytest.skip("the playwright package is not installed (make install-test)", allow_module_level=True)


def check_page(page: Any, name: str) -> None:
    """axe-core finds no serious or critical violation, Tab reaches every control, and
    the page is saved as a screenshot."""
    violations = axe_violations(page)
    assert not violations, f"{name}: {violations}"
    missed = unreachable_by_keyboard(page)
    assert not missed, f"{name}: not reachable by keyboard: {missed}"
    screenshot(page, name)


def log_in(page: Any, site: Site) -> None:
    page.goto("/")
    if "/login" in page.url:
        page.fill("#token", site.admin_token)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/$"))


def test_log_in_with_the_keyboard(page: Any, site: Site) -> None:
    page.goto("/tokens")
    expect(page).to_have_url(re.compile(r"/login\?next=/tokens$"))
    check_page(page, "login")
    page.fill("#token", "bol_wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked token")
    page.focus("#token")
    page.keyboard.type(site.admin_token)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/tokens$"))
    expect(page.get_by_role("heading", name="Tokens")).to_be_visible()


def test_integrations_list(page: Any, site: Site) -> None:
    log_in(page, site)
    expect(page.locator("#row-svc")).to_contain_text("needs_credentials")
    expect(page.locator("#row-svc")).to_contain_text("2 read · 1 write · 1 need approval")
    expect(page.locator("#row-fragile")).to_contain_text("ready")
    check_page(page, "integrations")


def test_upload_a_zip_and_install_it_from_the_preview(page: Any, site: Site) -> None:
    log_in(page, site)
    folder = write_integration(
        site.tmp / "packages",
        "notes",
        manifest=rest_manifest(title="Notes", allowedHosts=["api.notes.example"], version=3),
    )
    archive = site.tmp / "notes.zip"
    archive.write_bytes(folder_zip(folder, top="notes"))
    page.goto("/add")
    check_page(page, "add")
    page.set_input_files("#file", str(archive))
    page.get_by_role("button", name="Preview").click()
    card = page.locator("#preview-card")
    expect(card).to_contain_text("Preview: Notes")
    expect(card).to_contain_text("api.notes.example")
    expect(card).to_contain_text("echo")
    assert not (site.integrations / "notes").exists()  # a preview writes nothing
    check_page(page, "add-preview")
    page.get_by_role("button", name="Install").click()
    expect(page).to_have_url(re.compile(r"/integrations/notes$"))
    expect(page.get_by_role("heading", name="Notes", exact=True)).to_be_visible()
    assert (site.integrations / "notes" / "config.json").exists()
    page.goto("/")
    expect(page.locator("#row-notes")).to_contain_text("ready")


def test_credentials_and_test_connection(page: Any, site: Site) -> None:
    log_in(page, site)
    page.goto("/integrations/svc")
    expect(page.get_by_role("heading", name="Setup guide")).to_be_visible()
    expect(page.locator(".guide")).to_contain_text("Paste it below")
    check_page(page, "manage")
    page.fill("#c-accessToken", GOOD)
    page.get_by_role("button", name="Test connection").focus()
    page.keyboard.press("Enter")  # operable by keyboard
    expect(page.locator("#test-outcome")).to_have_text("ok")
    expect(page.locator("#test-message")).to_have_text("connected as octo")
    steps = page.locator("#test-report li")
    expect(steps).to_have_count(3)
    expect(page.locator('li[data-step="authenticate"]')).to_have_attribute("data-ok", "true")
    expect(page.locator('li[data-step="authenticate"]')).to_contain_text(re.compile(r"\d+(\.\d+)? ms"))
    assert page.input_value("#c-accessToken") == ""  # nothing typed is rendered back
    screenshot(page, "test-connection-ok")

    page.fill("#c-accessToken", "wrong-token-999")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-outcome")).to_have_text("failed")
    failing = page.locator('li[data-step="authenticate"]')
    expect(failing).to_have_attribute("data-ok", "false")
    expect(page.locator("#test-message")).to_contain_text("The service rejected the token")
    screenshot(page, "test-connection-failed")  # the page itself was checked above

    page.fill("#c-accessToken", GOOD)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#credentials")).to_contain_text("saved: accessToken")
    expect(page.locator('label[for="c-accessToken"] .badge')).to_have_text("set")
    assert GOOD not in page.content()


def test_run_a_read_from_its_form(page: Any, site: Site) -> None:
    log_in(page, site)
    page.goto("/integrations/svc")
    page.locator("#op-list_items > details > summary").focus()
    page.keyboard.press("Enter")  # a summary opens by keyboard
    page.locator("#p-list_items-limit").focus()
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the Run button, pressed by keyboard
    result = page.locator("#result-list_items")
    expect(result).to_contain_text("success")
    expect(result).to_contain_text("second")
    expect(result).not_to_contain_text("third")
    # a nested schema gets the JSON editor
    page.locator("#op-search > details > summary").click()
    page.fill("#json-search", '{"filter": {"q": "bollard"}}')
    page.locator("#op-search").get_by_role("button", name="Run").click()
    expect(page.locator("#result-search")).to_contain_text('"q": "bollard"')
    screenshot(page, "run-read")


def _request_write(page: Any, title: str) -> None:
    page.goto("/integrations/svc")
    page.locator("#op-create_item > details > summary").click()
    page.fill("#p-create_item-title", title)
    page.locator("#op-create_item").get_by_role("button", name="Request").click()
    expect(page.locator("#result-create_item")).to_contain_text("pending approval")


def test_invoke_a_write_and_approve_it_from_its_card(page: Any, site: Site) -> None:
    log_in(page, site)
    _request_write(page, "from the browser")
    page.locator("#result-create_item").get_by_role("link", name="its approval card").click()
    expect(page).to_have_url(re.compile(r"/approvals/[0-9a-f-]{36}$"))
    card = page.locator(".approval-card")
    expect(card).to_have_attribute("data-status", "pending")
    expect(card).to_contain_text("create_item")
    expect(card).to_contain_text('"title": "from the browser"')
    expect(card).to_contain_text("Expires")
    check_page(page, "approval")
    page.get_by_role("button", name="Approve and run").click()
    expect(page.locator(".approval-card")).to_have_attribute("data-status", "succeeded")
    expect(page.locator(".approval-result")).to_contain_text('"created": true')


def test_reject_a_write_with_a_reason(page: Any, site: Site) -> None:
    log_in(page, site)
    _request_write(page, "reject me")
    page.goto("/approvals")
    card = page.locator('.approval-card[data-status="pending"]', has_text="reject me")
    expect(card).to_have_count(1)
    check_page(page, "approvals")
    card.get_by_label("Reason for rejecting").fill("not today")
    card.get_by_role("button", name="Reject").click()
    done = page.locator(".approval-card", has_text="reject me")
    expect(done).to_have_attribute("data-status", "rejected")
    expect(done.locator(".reject-reason")).to_have_text("not today")


def test_a_broken_config_shows_on_the_list_without_reloading(page: Any, site: Site) -> None:
    log_in(page, site)
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    page.evaluate("() => { window.notReloaded = true; }")
    (site.integrations / "fragile" / "config.json").write_text('{"title": "Fragile", ')
    row = page.locator("#row-fragile")
    expect(row.locator(".badge")).to_have_text("error", timeout=15_000)
    expect(row.locator(".load-error")).to_contain_text("config.json")
    expect(row.locator(".load-error")).to_contain_text("still serves")
    assert page.evaluate("() => window.notReloaded === true")
    screenshot(page, "integrations-error")


def test_execution_log_filters_and_detail(page: Any, site: Site) -> None:
    log_in(page, site)
    page.goto("/executions")
    check_page(page, "executions")
    page.select_option("#f-integration", "svc")
    page.fill("#f-operation", "list_items")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"integration=svc&operation=list_items"))
    rows = page.locator("#execution-table tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").click()
    expect(page.locator("#envelope")).to_contain_text('"success": true')
    expect(page.locator("#connector-log")).to_contain_text("listing items")
    check_page(page, "execution")
    page.goto("/executions?status=failed&operation=testConnection")
    expect(page.locator("#execution-table tbody tr")).to_have_count(1)


def test_tokens_create_shown_once_and_revoke(page: Any, site: Site) -> None:
    log_in(page, site)
    page.goto("/tokens")
    page.fill("#token-name", "browser agent")
    page.get_by_role("button", name="Create agent token").click()
    expect(page.locator("#new-token")).to_contain_text("bol_")
    check_page(page, "tokens")
    page.get_by_role("button", name="Revoke browser agent").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.locator("#new-token")).to_have_count(0)  # shown once only


def test_log_out(page: Any, site: Site) -> None:
    log_in(page, site)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/approvals")
    expect(page).to_have_url(re.compile(r"/login\?next=/approvals$"))
