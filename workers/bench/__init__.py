"""The benchmark: ``jobordre bench`` and ``jobordre demo`` (issue 7, docs/performance.md)."""
