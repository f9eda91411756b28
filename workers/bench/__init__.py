"""The benchmark: ``jobordre bench`` and ``jobordre demo`` (docs/performance.md)."""
