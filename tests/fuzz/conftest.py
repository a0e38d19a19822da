"""Fuzzing budget: a bounded number of examples in `make test`, many more in `make fuzz`."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("HUIKE_FUZZ_EXAMPLES", "60"))

settings.register_profile(
    "huike-fuzz",
    max_examples=EXAMPLES,
    deadline=None,  # no timed assertions; a slow machine must not fail the run
    derandomize=os.environ.get("HUIKE_FUZZ_RANDOM") != "1",  # reproducible in CI; `make fuzz` explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
FUZZ = settings.get_profile("huike-fuzz")
