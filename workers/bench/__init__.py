"""The benchmark: ``jobordre bench`` and ``jobordre demo`` (issue 7, README, "Performance")."""
