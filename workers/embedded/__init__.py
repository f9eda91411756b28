"""`jobordre up`: a private redis-server (workers/embedded/server.py) and workers against
it (workers/embedded/up.py), from one command with nothing installed."""
