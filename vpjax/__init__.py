"""vpjax: economically grounded robot learning in JAX and MuJoCo MJX."""

__version__ = "0.1.0"
