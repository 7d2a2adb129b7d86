"""The browser harness's fixtures (one daphne server and one Chromium per module), for test_browser_private.py."""

from tests.test_browser import base_url, browser, people  # noqa: F401 - pytest collects imported fixtures
