"""Storage: the model cache, the result store, saved runs and artefacts on disk."""
