"""Layer family: softmax."""
