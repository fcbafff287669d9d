"""The HTTP model server: ``textcls serve`` (FastAPI + uvicorn), TorchServe-compatible routes."""
