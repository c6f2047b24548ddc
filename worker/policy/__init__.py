"""Channel policies: versioned TOML documents, the rules they configure, and the chain."""
