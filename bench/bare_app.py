"""The framework's floor: a FastAPI app with nothing in it, for boot-time and load baselines.

`POST /upload` is the ceiling for the prediction endpoints' request shape: it reads a
multipart upload and answers a constant, as a digit service would with infinitely fast code.
"""

from typing import Annotated

from fastapi import FastAPI, File, UploadFile

app = FastAPI()


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()]) -> dict[str, object]:
    await file.read()
    return {"prediction": "7", "confidence": 1.0}
