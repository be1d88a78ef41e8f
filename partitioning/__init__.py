"""The partitioning engine: barriers -> blocks -> households -> grids."""
