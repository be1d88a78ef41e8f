"""What people look at: planner maps, the command-centre screen, posters, tiles."""
