"""Fixtures the security tests share with the web tests."""

from tests.web.conftest import browsers  # noqa: F401 (a fixture: several cookie jars on one server)
