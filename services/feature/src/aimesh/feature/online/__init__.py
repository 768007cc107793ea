"""The online part: the stores of each entity's retained events (``protocol``, ``factory``; SQL and Redis),
their read cache, and the consumer's batch handler that keeps them current (``updater``)."""
