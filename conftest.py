"""Root conftest: framework import order first, then shared fixtures and profiles."""

from compress.frameworks import preload

preload()  # before anything can import tensorflow: see compress/frameworks.py

import os  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


@pytest.fixture(scope="session")
def runner():
    """One Runner per session: every model, artefact and result is computed once."""
    from compress.runner import Runner

    return Runner()
