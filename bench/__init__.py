"""Fan-out benchmark: the project's server against a raw-websockets baseline, in one run."""
