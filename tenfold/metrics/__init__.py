"""tenfold.metrics — filled in by its technique's issue."""

__all__: list[str] = []
