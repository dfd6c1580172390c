"""Amaranth components of the npegen MAC engine (decoders, multiplier, accumulator, encoders)."""
