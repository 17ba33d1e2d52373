"""Layer family: neuron."""
