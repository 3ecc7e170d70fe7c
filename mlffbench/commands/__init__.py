"""One module per CLI command, each with `register(app)`. Keep them thin: parse, call, print."""
