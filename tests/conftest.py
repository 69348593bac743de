"""Suite-wide settings.

Hypothesis: the ``ci`` profile (loaded by default) turns off the health checks that time input
generation (``too_slow``) and the per-example deadline. On CI's two shared cores, with daemons and
network namespaces of other tests winding down, one example can take seconds to generate or run;
that is the machine's load, not a property failing, and no test here may assert a timing.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
