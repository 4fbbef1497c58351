"""The REST API: kit (authentication, account scoping, route tables), openapi (/api/openapi.json),
and one module per resource."""
