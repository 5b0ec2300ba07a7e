"""vpjax: train package."""
