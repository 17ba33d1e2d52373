"""Layer family: pooling."""
