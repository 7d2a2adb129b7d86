"""Machine-readable and human-readable API documents (issue 5): OpenAPI, AsyncAPI, guide."""
