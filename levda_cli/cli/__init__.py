"""The command line: parsing, rich output on stderr, JSON on stdout, exit codes. No numerics."""
