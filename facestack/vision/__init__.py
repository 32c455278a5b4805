"""Networks, the model pack and what runs them: detection, alignment, quality, attributes, decoding."""
