"""The faces of gridmap: the command line and the HTTP service (routes, auth, jobs)."""
