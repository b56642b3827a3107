"""Typed request and response shapes (pydantic). They validate input at the HTTP boundary
and generate the OpenAPI document, so the two cannot disagree."""
