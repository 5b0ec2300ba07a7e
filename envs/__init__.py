"""vpjax: envs package."""
