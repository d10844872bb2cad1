"""The OpenAPI page (``/docs``, Swagger UI) renders from the server alone: no CDN, no other origin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect

from tests.browser.conftest import Opened
from tests.servers import LiveServer

pytestmark = pytest.mark.browser


def test_docs_render_swagger_ui_without_any_request_leaving_the_server(
    browser: Any, open_page: Callable[..., Opened], live_server: LiveServer
) -> None:
    origin = urlsplit(live_server.http_url).netloc
    elsewhere: list[str] = []

    def block_other_origins(route: Route) -> None:  # as on a machine without internet: nothing answers
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    opened = open_page("about:blank")
    opened.context.route("**/*", block_other_origins)
    opened.page.goto(f"{live_server.http_url}/docs")
    ui = opened.page.locator("#swagger-ui")
    expect(ui.locator(".info .title")).to_contain_text("mnist-live")
    expect(ui.locator(".opblock-summary-path", has_text="/predict").first).to_be_visible()
    assert elsewhere == []
    assert all(urlsplit(url).netloc == origin for url in opened.console.requests if url != "about:blank")
    assert any(url.endswith(".js") for url in opened.console.requests)  # the assets were loaded, from here
    assert opened.console.errors() == []
