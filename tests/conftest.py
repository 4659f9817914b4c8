"""Test-suite settings.

Property tests (hypothesis) draw the same examples on every run by default, so a
run's outcome (in CI too) depends only on the code, not on a new random draw.
``python -m pytest --hypothesis-profile=explore`` draws new examples to look for
corner cases; a failure found so becomes a fixed test.
"""

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")
