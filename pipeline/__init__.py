"""The engine: recipes, the stage graph, the content-addressed store, the runner and the CLI."""
