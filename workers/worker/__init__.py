"""The worker process (`jobordre worker`, and the workers of `jobordre up`): the actors,
the batch consumer of write commands, the relay of events, the scheduler and the runner
that starts them. It depends on workers/transport/ and workers/client/, never on the
command line."""
