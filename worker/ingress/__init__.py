"""Transports: each turns bytes into one call of the pipeline and its result into an answer."""
