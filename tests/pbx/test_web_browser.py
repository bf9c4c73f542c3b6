"""The admin's web page in a real browser (Debian's headless Chromium through chromedriver), over a real call log
that a real daemon wrote for calls through the real Asterisk, with the real capture of each call.

An admin logs in, filters, opens a call, plays its audio, relabels it and denies its number; the next call from
that number is then rejected by the running daemon before it is answered. The test leaves a screenshot of the
call's page (PBXGUARD_SCREENSHOT=path keeps a copy: README's picture is made that way).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pbxguard.audio.files import read_audio
from tests.daemon import EXAMPLES, Daemon
from tests.pbx.test_asterisk import PBX
from tests.web.page import PASSWORD, WebPage, web_config

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CALLER = "+12025550177"
# As root, in a closed network: no sandbox, and none of Chromium's own connections to Google.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=1280,1400")


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        message = f"the browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} missing: bash .ci/setup)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="pbxguard-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(asterisk_prefix, tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    daemon = Daemon(captures={"enabled": True, "directory": str(folder / "captures")})
    pbx = PBX(folder / "pbx", daemon)
    page = WebPage(web_config(folder).with_(database={"path": f"{daemon.rundir}/calls.db"}))
    yield pbx, page
    page.stop()
    pbx.stop()
    daemon.stop()


def test_an_admin_reviews_relabels_and_denies_a_caller_in_the_browser(site, browser, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

    pbx, page = site
    number = pbx.call(pbx.wav("greeting", read_audio(EXAMPLES / "greeting_beep.wav")), caller=CALLER)
    screened = pbx.daemon.record_for(number, timeout=30)
    other = pbx.daemon.record_for(pbx.call(pbx.wav("live", read_audio(EXAMPLES / "live_answer.wav"))), timeout=30)
    assert screened.status == "screened" and screened.capture and other.status == "screened"
    # A click that posts a form reloads the page: an element found just before the reload goes stale; look again.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))

    browser.get(f"{page.url}/calls")
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "password").send_keys("not the password")
    browser.find_element(By.ID, "login").click()
    assert "Wrong password" in wait.until(seen.presence_of_element_located((By.ID, "login-error"))).text
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    wait.until(seen.presence_of_element_located((By.ID, "calls")))

    rows = browser.find_elements(By.CSS_SELECTOR, "#calls tbody tr")
    assert len(rows) == 2 and "+120*****177" in browser.page_source  # masked
    browser.find_element(By.NAME, "number").send_keys("(202) 555-0177")
    Select(browser.find_element(By.NAME, "verdict")).select_by_visible_text(screened.verdict)
    browser.find_element(By.ID, "filter").click()
    wait.until(lambda b: "number=" in b.current_url)  # the filtered page, not the one the click left
    rows = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#calls tbody tr a"))
    assert len(rows) == 1
    rows[0].click()
    wait.until(seen.presence_of_element_located((By.ID, "verdict-label")))
    assert browser.find_element(By.ID, "verdict-label").text == screened.verdict
    assert "beep" in browser.find_element(By.ID, "evidence").text or "speech" in browser.find_element(By.ID, "evidence").text
    assert browser.execute_script("return document.getElementById('spectrogram').naturalWidth") > 300

    played = browser.execute_async_script("""
        const done = arguments[arguments.length - 1], player = document.getElementById('player');
        player.play().then(() => setTimeout(() => done([player.currentTime, player.duration, player.error]), 700),
                           e => done(['refused', String(e), null]));""")
    assert played[2] is None and played[0] > 0.2, played  # it plays
    assert abs(played[1] - screened.audio_ms / 1000) < 0.1, played  # the whole captured window

    relabel = "human" if screened.label != "human" else "machine"
    browser.find_element(By.ID, f"label-{relabel}").click()
    wait.until(lambda b: b.find_element(By.ID, "label").text == relabel)
    log = pbx.daemon.call_log()
    assert log.call(screened.call_id).label == relabel

    browser.find_element(By.ID, "deny").click()
    wait.until(lambda b: "deny list" in b.find_element(By.ID, "listed").text)
    assert ("deny", CALLER) in [(kind, pattern) for kind, pattern, _ in log.lists()]
    shot = tmp_path / "web-call.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("PBXGUARD_SCREENSHOT"):
        shutil.copy(shot, os.environ["PBXGUARD_SCREENSHOT"])

    again = pbx.outcome(pbx.call(pbx.wav("again", read_audio(EXAMPLES / "live_answer.wav")), caller=CALLER))
    assert again["userfield"] == "REJECTED_CALLER_DENY_LIST" and again["member"] == ""
    browser.get(f"{page.url}/calls?number=%2B12025550177")
    newest = browser.find_elements(By.CSS_SELECTOR, "#calls tbody tr")[0].text
    assert "denied" in newest, newest
