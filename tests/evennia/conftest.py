"""Evennia's test harness under plain pytest: Django settings, ``evennia._init()`` and a test
database (in-memory SQLite) for the session. Skipped when Evennia is not installed."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

if importlib.util.find_spec("evennia") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    _SET_HERE = "DJANGO_SETTINGS_MODULE" not in os.environ
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.evennia.test_settings")
    import django

    django.setup()
    if _SET_HERE:  # configured now; keep it out of subprocesses other tests start
        del os.environ["DJANGO_SETTINGS_MODULE"]
    import evennia

    evennia._init()

    @pytest.fixture(scope="session", autouse=True)
    def evennia_test_database() -> Iterator[None]:
        from django.conf import settings
        from django.db import connection
        from django.test.utils import setup_test_environment, teardown_test_environment

        setup_test_environment()
        settings.TEST_ENVIRONMENT = True
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True,
                                                      serialize=False)
        try:
            yield
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
            teardown_test_environment()
