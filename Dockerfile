# The digit service. Build with the MNIST files at hand (offline):
#   docker build --build-arg MNIST_DATA_DIR=/mnist-data ...   (the folder must be visible to RUN)
# or without, and the build downloads MNIST. Either way the model is trained here, so
# containers start ready and serve from the cached model.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid, so orchestrators can verify "runs as non-root" without a passwd file.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY *.py alembic.ini ./
COPY migrations/ ./migrations/
COPY ui/ ./ui/
RUN install -d -o 10001 -g 10001 /app/models /app/data
USER 10001:10001

ARG MNIST_DATA_DIR=
RUN MNIST_DATA_DIR="$MNIST_DATA_DIR" python -m model train

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
# timeouts.py closes connections that stall before their headers (10 s) or mid-body (30 s);
# uvicorn itself closes idle kept-alive connections after 5 s; uvloop and httptools (C) serve
CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "timeouts:TimedHttpToolsProtocol"]
