"""Word vectors and embedders."""
