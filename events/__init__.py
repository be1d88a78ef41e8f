"""Events: routing located events to grids, the closed-loop workflow, deadlines."""
