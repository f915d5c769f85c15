"""Job executors: ``local`` (worker processes) and ``ray`` (Ray tasks), one interface."""
