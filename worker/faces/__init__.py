"""The ways in: the command line, the HTTP intake and the local sandbox."""
