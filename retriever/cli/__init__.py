"""The `hybrid-rag` subcommands the retriever owns (ingest, search, collections, maintain, serve),
and the options and error handling `eval` and `bench` share with them."""
