"""A local Keap: the REST v2 subset keap-orders uses, over real HTTP, with Keap's limits and faults."""
