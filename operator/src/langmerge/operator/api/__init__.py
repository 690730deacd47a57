"""The API: pydantic models of the custom resources, the single source of truth for the CRDs."""
