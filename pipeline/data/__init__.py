"""Data: the embedded street-scene generator, real-data adapters, curation and loaders."""
