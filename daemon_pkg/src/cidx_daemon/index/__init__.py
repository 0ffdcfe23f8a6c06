"""Writing the index: walk the project, chunk, embed, and publish immutable generations."""
