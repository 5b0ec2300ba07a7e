"""vpjax: valuation package."""
