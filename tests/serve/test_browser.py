"""The UI in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) uploads a wav and gets the reply.

Skipped with the reason when Playwright or a chromium binary is missing (`make setup` installs both when run as root).
"""

from __future__ import annotations

import io
import os
import shutil

import httpx
import pytest
import soundfile as sf

from tests.serve.conftest import check_audio

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency (make setup installs it)")
CHROMIUM = os.environ.get("OMNI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


def test_browser_voice_turn(server, wav_file, tmp_path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/", wait_until="load", timeout=60_000)
            page.locator("#send").wait_for(timeout=60_000)
            page.locator('#audio-in button[aria-label="Upload file"]').click()  # the microphone is the default
            page.locator("#audio-in input[type=file]").set_input_files(str(wav_file))
            page.locator("#audio-in audio").first.wait_for(state="attached", timeout=30_000)  # upload shown
            page.locator("#send").click()
            # the reply: its audio file in the history (a download link to reply-*.wav), the latency readout,
            # and the streamed player fed while the reply was generated
            reply_link = page.locator('#chat a.download-link[href*="reply-"]')
            reply_link.first.wait_for(state="attached", timeout=90_000)
            page.get_by_text("first audio chunk").wait_for(timeout=30_000)
            shot = tmp_path / "voice_chat.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            href = reply_link.first.get_attribute("href")
            assert reply_link.count() == 1 and href.endswith(".wav")
            samples, sr = sf.read(io.BytesIO(httpx.get(href, timeout=30).content), dtype="float32")
            check_audio(samples, sr)  # the reply the page links to is valid 24 kHz speech
            assert page.locator('#chat a.download-link[href$="question.wav"]').count() == 1  # the user's upload
            assert page.locator("#chat .user-row").count() == 1 and page.locator("#chat .bot-row").count() >= 1
            assert page.locator("#reply-audio audio").get_attribute("src")  # the streamed reply was played
            latency = page.locator("#latency").inner_text()
            assert "LLM steps" in latency and "real-time factor" in latency
            # bad input: sending nothing shows a readable error, and the page keeps working
            page.locator("#clear").click()
            page.locator("#send").click()
            page.get_by_text("empty message").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
            page.locator("#text-in textarea").fill("Hello")
            page.locator("#send").click()
            page.locator("#chat .user-row").first.wait_for(timeout=30_000)
            page.get_by_text("first text token").wait_for(timeout=90_000)
            assert page.locator("#chat .user-row").count() == 1  # cleared before: a fresh conversation
            assert not errors, errors
        finally:
            browser.close()
