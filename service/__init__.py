"""The HTTP service: FastAPI app, settings, routes, rate cache, metrics."""
