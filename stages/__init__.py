"""DVC stage entry points: thin typer commands that parse params and call `pipeline`."""
