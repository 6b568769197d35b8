"""Exit codes of ``python -m scenarios`` and its demo (documented in README.md and docs/)."""

EXIT_OK = 0
#: an expectation failed (the demo: or a result differs from the article)
EXIT_FAILED = 1
#: a usage or scenario-file error
EXIT_USAGE = 2
#: the backend is unavailable or could not be set up (doctor: something is missing; clean: a
#: cluster could not be removed)
EXIT_BACKEND = 3
EXIT_INTERRUPTED = 130
