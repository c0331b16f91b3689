"""Test configuration: float64 is enabled globally so exactness checks are meaningful.

float32 paths stay tested by passing float32 arrays explicitly (JAX keeps
their dtype even with x64 enabled).
"""
import jax

jax.config.update("jax_enable_x64", True)
