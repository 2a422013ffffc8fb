"""The pages in a real browser (Debian's chromium, driven by Playwright) against `conveyor
serve` on loopback: a promoter logs in, opens the flow and triggers a release, watches the
release page change without reloading it, a release manager approves production from
another browser, the release succeeds, and the matrix shows the new version. Screenshots
of each page at 1280 px and at a phone's width are kept in .artifacts/browser/ (issue 12)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.db import open_store
from tests.conftest import BASE, DIGEST, apply_yaml, shop_flow
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CONVEYOR_TEST_ARTIFACTS", ROOT / ".artifacts")) / "browser"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
CHROMIUM = "/usr/bin/chromium"
PASSWORDS = {"pat": "pat's long passphrase", "rita": "rita's long passphrase"}

FLOW = (
    shop_flow("qa", "prod", name="shop-flow")
    + """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: production}
spec:
  selector: {environments: {names: [prod]}}
  gates: [{approval: {require: [{group: release-managers}]}}]
"""
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Debian's build, not Playwright's download (nothing is fetched here); root needs
    # --no-sandbox; the rest keeps the browser from calling anywhere but loopback.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser")
    db = root / "conveyor.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), actor="local:setup", workdir=root)
    cv.claim()
    apply_yaml(cv, BASE + FLOW)
    cv.add_user("pat", [])
    cv.grant("user:pat", Role.PROMOTER, Scope())
    cv.add_user("rita", ["release-managers"])
    cv.grant("group:release-managers", Role.APPROVER, Scope(names=("prod",)))
    for who in ("pat", "rita"):
        cv.set_password(who, PASSWORDS[who])
    cv.create_release("shop", "2.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.close()
    with serving(db, root) as url:
        yield url


def log_in(browser: Browser, url: str, who: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/")
    expect(page).to_have_url(f"{url}/login?next=/")
    page.get_by_label("User").fill(who)
    page.get_by_label("Password").fill(PASSWORDS[who])
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("heading", name="What runs where")).to_be_visible()
    return page


def snap(page: Page, name: str) -> None:
    """The page at both widths, for people to look at (and the CI's artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=ARTIFACTS / f"{name}-{label}.png", full_page=True)
        # Nothing spills sideways on a phone but what scrolls in its own box (the chart).
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px wider than a {label} screen"
    assert before is not None
    page.set_viewport_size(before)


def test_trigger_watch_approve_and_see_it_run(browser: Browser, site: str) -> None:
    url = site
    pat = log_in(browser, url, "pat")
    snap(pat, "home-empty")

    pat.get_by_role("link", name="Flows").click()
    pat.get_by_role("link", name="shop-flow").click()
    chart = pat.locator("svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("[data-environment=prod]")).to_be_visible()
    expect(chart.locator("text.gate")).to_have_text(["approval"])  # on the edge into prod
    snap(pat, "flow")

    pat.get_by_label("Release").select_option("shop@2.0.0")
    pat.get_by_role("button", name="Trigger").click()
    expect(pat).to_have_url(f"{url}/releases/shop@2.0.0")
    # From here on the page is never reloaded: a marker set now must survive.
    pat.evaluate("window.stillHere = true")
    prod = pat.locator(".node[data-environment=prod]")
    expect(prod.locator(".state")).to_have_text("waiting", timeout=30_000)
    expect(prod).to_contain_text("release-managers")
    expect(prod.get_by_role("button", name="Approve")).to_have_count(0)  # pat may not
    snap(pat, "release-waiting")

    rita = log_in(browser, url, "rita")
    rita.get_by_role("link", name="Approvals").click()
    rita.get_by_role("link", name="shop@2.0.0/prod").click()
    rita.get_by_label("Comment").fill("CHG-7 looks good")
    snap(rita, "release-approve")
    rita.get_by_role("button", name="Approve").click()

    expect(pat.locator("h1 .status")).to_have_text("succeeded", timeout=30_000)
    expect(prod.locator(".state")).to_have_text("succeeded")
    assert pat.evaluate("window.stillHere") is True
    expect(pat.locator(".gantt .bar")).to_have_count(3)
    snap(pat, "release-succeeded")

    pat.get_by_role("link", name="What runs where").click()
    cell = pat.locator("table.matrix tbody tr", has_text="shop").locator("td").nth(2)
    expect(cell.get_by_role("link", name="2.0.0")).to_be_visible()
    snap(pat, "home")

    rita.goto(f"{url}/audit?release=shop@2.0.0")
    expect(rita.locator(".verified")).to_have_count(0)  # verified on demand only
    rita.get_by_role("button", name="Verify the trail").click()
    expect(rita.locator(".verified")).to_contain_text("Verified")
    expect(rita.locator("table.audit")).to_contain_text("rita")
    snap(rita, "audit")
    for page in (pat, rita):
        page.close()


def test_every_page_renders(browser: Browser, site: str) -> None:
    """Each page a person reaches from the menu answers, with what it is for on it."""
    url = site
    page = log_in(browser, url, "pat")
    for path, heading in [
        ("/products/shop", "Product shop"),
        ("/releases/shop@2.0.0/forecast", "Forecast of shop@2.0.0"),
        ("/approvals", "Waiting for your approval"),
    ]:
        page.goto(url + path)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        snap(page, path.strip("/").replace("/", "-").replace("@", "-"))
    page.goto(url + "/settings")
    expect(page.locator(".error")).to_contain_text("needs admin")  # pat is no admin
    page.close()
