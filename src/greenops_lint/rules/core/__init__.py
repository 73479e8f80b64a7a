"""GO0xx: problems with the file itself. The engine reports these, not a visitor."""
