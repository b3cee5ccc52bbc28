"""From run directories to numbers people can trust: a tidy table of every run and curve
point (aggregate), rliable statistics (stats), tables (tables) and plots (plots)."""
