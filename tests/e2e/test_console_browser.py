"""The operators' console in a real browser: headless Chromium (Debian's ``chromium``)
driven by Playwright, against the console served over HTTP and the real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from playwright.async_api import Browser, Page, async_playwright, expect

from medcard.console.app import create
from shared.auth import Role, issue_token
from shared.events import CardIssued, CardLost
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.integration.ops_support import event, free_port, publish, serving

pytestmark = pytest.mark.infra
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 20_000
TODAY = date(2026, 3, 2)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


def token(settings: Settings, role: Role) -> str:
    return issue_token(settings, sub=f"{role}-1", role=role, person_id="P-someone" if role == "cardholder" else None)


async def log_in(page: Page, url: str, access_token: str) -> None:
    await page.goto(url)
    await page.fill("#token", access_token)
    await page.click("#token-form button[type=submit]")


def issued(person: str, card: str) -> CardIssued:
    return CardIssued(person_id=person, card_number=card, agent_bank="BOC")


def lost(person: str, card: str) -> CardLost:
    return CardLost(person_id=person, card_number=card, channel="online", voucher=f"V-{card[-3:]}",
                    business_date=TODAY)


@contextlib.asynccontextmanager
async def console(browser: Browser, settings: Settings) -> AsyncIterator[tuple[Page, str]]:
    """The console served over HTTP (services all unreachable) and a page of the browser,
    closed before the server stops so no live stream is left hanging."""
    nobody = f"http://127.0.0.1:{free_port()}"
    urls = dict.fromkeys(("identity", "cards", "bank", "notifications"), nobody)
    with serving(lambda: create(settings, urls=urls)) as url:
        page = await browser.new_page()
        try:
            yield page, url
        finally:
            await page.close()


async def commit(settings: Settings, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def test_an_operator_watches_events_live_and_opens_a_card_story(settings: Settings, browser: Browser) -> None:
    async with console(browser, settings) as (page, url):
        await log_in(page, url, token(settings, "operator"))
        await expect(page.locator("#who")).to_have_text("operator-1 (operator)", timeout=WAIT_MS)
        await page.click("nav button[data-tab=live]")  # the first screen is the overview
        await expect(page.locator("#stream-status")).to_have_text("live", timeout=WAIT_MS)

        # Events published now appear on the page, newest first, each with its card and key facts.
        placed = await publish(settings, event(issued("P-A", "6216610000000000801"), key="P-A"),
                               event(lost("P-A", "6216610000000000801"), key="P-A", sequence=2),
                               event(issued("P-B", "6216610000000000802"), key="P-B"))
        rows = page.locator("#events tr.event")
        await expect(rows).to_have_count(3, timeout=WAIT_MS)
        await expect(rows.first).to_contain_text("6216610000000000802")
        await expect(page.locator("#events tr.event[data-type=CardLost]")).to_contain_text("voucher=V-801")

        # Filtered to one type, only what matches that filter arrives.
        await page.fill("#f-type", "CardLost")
        await page.click("#filters button[type=submit]")
        await expect(page.locator("#stream-status")).to_have_text("live", timeout=WAIT_MS)
        placed += await publish(settings, event(issued("P-C", "6216610000000000803"), key="P-C"),
                                event(lost("P-C", "6216610000000000803"), key="P-C", sequence=2))
        await expect(rows).to_have_count(1, timeout=WAIT_MS)
        await expect(rows.first).to_have_attribute("data-subject", "6216610000000000803")
        await expect(rows.first).to_have_attribute("data-type", "CardLost")

        # A click on the card number opens its story: both of its events, in order.
        await rows.first.locator("td.link").click()
        await expect(page.locator("#story tr.story-event td.name")).to_have_text(["CardIssued", "CardLost"],
                                                                                 timeout=WAIT_MS)
        await expect(page.locator("#story h2")).to_contain_text("held by P-C")
        await expect(page.locator("#story tr.state[data-service=cards]")).to_contain_text("unreachable")

        # The lag view shows every service's group and refreshes by itself: once the bank's group
        # has committed past P-A's first event, the rest of that partition shows as its lag.
        await page.click("nav button[data-tab=lag]")
        await expect(page.locator("#lag")).to_contain_text(settings.group_id("notifications"), timeout=WAIT_MS)
        await expect(page.locator("#lag tr.lag-row")).to_have_count(0)
        tp = TopicPartition(topic_for_service("cards", settings.namespace), placed[0][0])
        await commit(settings, settings.group_id("bank"), tp, 1)
        end = 1 + max(offset for partition, offset in placed if partition == tp.partition)
        bank = f"#lag tr.lag-row[data-group='{settings.group_id('bank')}'][data-topic='{tp.topic}']"
        await expect(page.locator(bank)).to_have_count(4, timeout=WAIT_MS)  # every partition of the topic
        cells = page.locator(f"{bank}[data-partition='{tp.partition}'] td.num")
        await expect(cells).to_have_text([str(tp.partition), "1", str(end), str(end - 1)])


async def test_a_user_without_the_operator_role_is_refused(settings: Settings, browser: Browser) -> None:
    async with console(browser, settings) as (page, url):
        await log_in(page, url, token(settings, "cardholder"))
        await expect(page.locator("#login-error")).to_contain_text(
            "role cardholder may not use the operators' console", timeout=WAIT_MS)
        await expect(page.locator("#app")).to_be_hidden()
        await page.reload()  # no session was opened
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#app")).to_be_hidden()
        answer = await page.request.get(f"{url}/api/lag",
                                        headers={"Authorization": f"Bearer {token(settings, 'clerk')}"})
        assert answer.status == 403


async def chart_points(page: Page, series: str) -> str:
    return await page.locator(f"#chart-rate polyline[data-series={series}]").get_attribute("points") or ""


async def test_the_first_screen_is_an_overview_whose_charts_move_with_the_events(settings: Settings,
                                                                                 browser: Browser) -> None:
    async with console(browser, settings) as (page, url):
        await log_in(page, f"{url}/?every=0.5", token(settings, "operator"))
        await expect(page.locator("#tab-overview")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#overview-status")).to_have_text("live", timeout=WAIT_MS)
        # Each service's health at a glance: here none of them answers.
        for service in ("identity", "cards", "bank", "notifications"):
            await expect(page.locator(f".tile[data-service={service}]")).to_have_attribute("data-value", "down",
                                                                                         timeout=WAIT_MS)
        await expect(page.locator("#tile-dlq")).to_have_attribute("data-value", "0")

        # Events flow for a few seconds: the cards line rises above zero and keeps moving.
        async def flow() -> None:
            for i in range(12):
                await publish(settings, *(event(issued(f"P-{i}-{j}", f"62166100000{i:04d}{j:04d}"), key=f"P-{i}-{j}")
                                          for j in range(5)))
                await asyncio.sleep(0.3)
        flowing = asyncio.create_task(flow())
        cards_line = page.locator("#chart-rate polyline[data-series=cards]")
        await expect(cards_line).to_have_count(1, timeout=WAIT_MS)
        await page.wait_for_function(
            "() => Number(document.querySelector('#chart-rate polyline[data-series=cards]')"
            "?.dataset.peak || 0) > 0", timeout=WAIT_MS)
        before = await chart_points(page, "cards")
        await page.wait_for_function(
            "(b) => document.querySelector('#chart-rate polyline[data-series=cards]').getAttribute('points') !== b",
            arg=before, timeout=WAIT_MS)
        assert await chart_points(page, "cards") != before
        await flowing

        # A dead letter shows on its tile, and the tile opens the dead letters.
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            dlq_topic = f"{topic_for_service('cards', settings.namespace)}.dlq"
            await producer.send_and_wait(dlq_topic, b"not an event", key=b"P-x",
                                         headers=[("dlq_reason", b"unparseable: a test")])
        finally:
            await producer.stop()
        await expect(page.locator("#tile-dlq")).to_have_attribute("data-value", "1", timeout=WAIT_MS)
        await page.click("#tile-dlq")
        await expect(page.locator("#tab-dlq")).to_be_visible()

        # The lag line of a group that committed behind the end rises, and a legend entry
        # opens the live events of that topic.
        await page.click("nav button[data-tab=overview]")
        for partition in range(4):
            tp = TopicPartition(topic_for_service("cards", settings.namespace), partition)
            await commit(settings, settings.group_id("bank"), tp, 0)
        await page.wait_for_function(
            "() => Number(document.querySelector('#chart-lag polyline[data-series=bank]')?.dataset.last || 0) > 0",
            timeout=WAIT_MS)
        await page.click("#legend-rate span[data-series=cards]")
        await expect(page.locator("#tab-live")).to_be_visible()
        await expect(page.locator("#f-service")).to_have_value("cards")
