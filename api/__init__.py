"""The faces of gridmap: the command line (and, later, the HTTP service)."""
