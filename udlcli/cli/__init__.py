"""The `udl` command line: thin Typer commands over the engine (torch is imported only when a command runs)."""
