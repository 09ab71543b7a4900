"""Reference policies: direct (no search), scripted, oracle and random."""
