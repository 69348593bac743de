"""Test support shared by unit, interop and bench code: network namespaces (:mod:`.netns`) and a
two-step timestamped echo (:mod:`.twostep`)."""
