"""The data engine: recipe data jobs lowered to datatrove pipelines with provenance."""
