"""Debian's Chromium for the browser tests (Playwright drives it; no browser downloads)."""

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this closed network
# refuses; everything the tests load is on 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def visitor_context(browser, **kwargs):  # noqa: ANN001, ANN003, ANN201 - Playwright's types
    """A browser context that presents this Chromium's User-Agent without "Headless".

    The visit API treats headless browsers as crawlers (they never take a pool
    number); tests that play a real visitor against the real API use this.
    """
    agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{browser.version} Safari/537.36"
    )
    return browser.new_context(user_agent=agent, **kwargs)
