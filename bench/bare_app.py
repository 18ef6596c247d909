"""The framework's floor: a FastAPI app with nothing in it, for boot-time and load baselines."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
