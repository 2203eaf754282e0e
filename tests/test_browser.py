"""The chat UI in headless Chromium (playwright), over the real ``Chatbot()`` and the seed article.

Set ``QA_SCREENSHOT=1`` to also write docs/screenshot.png (used by the README).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def app_url():
    """The real app (real Chatbot over seeds/) served in-process on a free localhost port."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from conftest import served

    from qa.chat.chatbot import Chatbot

    bot = Chatbot()
    bot.warm_up()
    with served(bot) as (_, url):
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (playwright cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh page on the app, chat empty."""
    context = browser.new_context(viewport={"width": 1200, "height": 1080})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(app_url, wait_until="load")
    pg.locator("#qa-question textarea").wait_for(timeout=60_000)
    pg.page_errors = errors
    try:
        yield pg
    finally:
        context.close()


def ask(page, question: str, *, enter: bool = False):
    """Type a question, send it (button or Enter), wait for the new assistant reply; return it."""
    replies = page.locator("#qa-chat .qa-answer, #qa-chat .qa-error")
    before = replies.count()
    box = page.locator("#qa-question textarea")
    box.fill(question)
    if enter:
        box.press("Enter")
    else:
        page.locator("#qa-send").click()
    reply = replies.nth(before)
    reply.wait_for(timeout=ANSWER_TIMEOUT_MS)
    return reply


def test_answer_with_highlight_then_unanswerable(page):
    reply = ask(page, "Why does Turkey want Ukrainian engines?")
    assert reply.locator(".qa-reply strong").inner_text().strip()
    assert "Confidence:" in reply.inner_text()
    mark = reply.locator("mark")
    assert mark.count() >= 1 and mark.first.is_visible()
    assert mark.first.inner_text().strip() == reply.locator(".qa-reply strong").inner_text().strip()
    assert "article.txt" in reply.locator(".qa-passage-meta").first.inner_text()
    # the question is echoed in the chat
    assert "Why does Turkey want Ukrainian engines?" in page.locator("#qa-chat").inner_text()

    if os.environ.get("QA_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "screenshot.png"))

    reply = ask(page, "What is the capital of Australia?", enter=True)  # not about the article
    assert "does not say" in reply.inner_text()
    assert reply.locator("mark").count() == 0
    assert reply.locator(".qa-passage").count() >= 1  # closest passages still shown
    assert not page.page_errors


def test_follow_up_and_clear(page):
    first = ask(page, "Who objected to the factory deal?")
    assert first.locator(".qa-reply").count() == 1
    assert "United States" in first.locator(".qa-reply strong").inner_text()
    second = ask(page, "Why did they object?", enter=True)
    # the follow-up is understood with the conversation: an answer, not "does not say"
    answer = second.locator(".qa-reply strong").inner_text().strip()
    assert "military capabilities of China" in answer and "does not say" not in second.inner_text()
    # the sentence it stands in, the answer in bold within it, and the span highlighted in its passage
    context = second.locator(".qa-context")
    assert context.is_visible() and answer in context.inner_text()
    assert context.locator("b").inner_text().strip() == answer
    assert second.locator("mark").first.inner_text().strip() == answer
    assert page.locator("#qa-chat .qa-question").count() == 2
    page.locator("#qa-clear").click()
    page.wait_for_function("document.querySelectorAll('#qa-chat .qa-question').length === 0")
    # the same follow-up in a cleared conversation has nothing to lean on
    third = ask(page, "Why did they object?")
    strong = third.locator(".qa-reply strong")
    assert "does not say" in third.inner_text() or strong.first.inner_text().strip() != answer


def test_bad_and_hostile_input_shows_clear_message(page):
    reply = ask(page, "   ")
    assert "qa-error" in reply.get_attribute("class")
    assert "Traceback" not in reply.inner_text()
    ask(page, '<img src=x onerror="window.__xss=1"> <b>who</b> sells drones?')
    assert page.evaluate("window.__xss === undefined")
    assert page.locator("#qa-chat .qa-question b, #qa-chat .qa-question img").count() == 0
    assert "<b>who</b>" in page.locator("#qa-chat .qa-question").last.inner_text()
    # and it keeps answering
    assert ask(page, "How many agreements did Erdogan sign?").locator(".qa-reply").count() == 1


def test_an_uploaded_pdf_answers_with_its_page_in_this_window_only(browser, app_url, page, tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Harbour report. The harbour of the town handles grain and timber ships every week.")
    pdf.add_page()
    pdf.multi_cell(0, 8, "The old mill on the river was built by Anna Berg in 1990. It grinds wheat for the "
                         "village bakery and is open to visitors on Sundays.")
    pdf.output(str(tmp_path / "mill-report.pdf"))

    page.get_by_text("Your documents (this window only)").click()
    page.locator("#qa-upload input[type=file]").set_input_files(str(tmp_path / "mill-report.pdf"))
    page.locator("#qa-doc-status", has_text="Added mill-report.pdf").wait_for(timeout=ANSWER_TIMEOUT_MS)
    reply = ask(page, "Who built the old mill?")
    assert reply.locator("mark").first.inner_text().strip() == "Anna Berg"
    cited = reply.locator(".qa-passage", has=page.locator("mark")).locator(".qa-passage-meta").inner_text()
    assert "mill-report.pdf p. 2" in cited
    assert not page.page_errors
    if os.environ.get("QA_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "documents.png"), full_page=True)

    other = browser.new_context(viewport={"width": 1200, "height": 1080}).new_page()
    try:
        other.goto(app_url, wait_until="load")
        other.locator("#qa-question textarea").wait_for(timeout=60_000)
        elsewhere = ask(other, "Who built the old mill?")
        assert "Anna Berg" not in elsewhere.inner_text() and "mill-report" not in elsewhere.inner_text()
    finally:
        other.context.close()
