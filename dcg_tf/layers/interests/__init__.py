"""Interest extraction and selection: routing clicks to interests, choosing among them."""
