"""The `hybrid-rag` command line: assembles the subcommands each package owns."""

__all__: list[str] = []
