"""crossjax: differentiable simulation of DNNs on analog resistive crossbar arrays."""

__version__ = "0.1.0"
