"""Fixtures the security tests share with the web tests."""

from tests.web.conftest import browsers, visitor  # noqa: F401 (fixtures: cookie jars, web-chat visitors)
