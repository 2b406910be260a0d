# The hybrid-rag HTTP API: `hybrid-rag serve` with the packaged local model and OpenAI-compatible embeddings.
# The database comes from DATABASE_URL (see compose.yaml); the embedded Postgres is not installed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY ingest ./ingest
COPY retriever ./retriever
COPY eval ./eval
COPY bench ./bench
COPY hybrid_rag ./hybrid_rag
# The ONNX graph of the packaged model (the default backend) is exported at build time, not on first use.
RUN pip install -c constraints.txt ".[local,openai,topics]" \
    && python -m retriever.onnx_export \
    && useradd --create-home --uid 10001 hybrid-rag

USER hybrid-rag
EXPOSE 8000
CMD ["hybrid-rag", "serve", "--host", "0.0.0.0", "--port", "8000"]
