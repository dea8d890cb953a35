"""tenfold.layers — filled in by its technique's issue."""

__all__: list[str] = []
