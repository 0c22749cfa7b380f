# One image for every process of Atelier: `atelier serve` (API replica or single node)
# and `atelier worker` (next to a ComfyUI). docs/DEPLOY.md shows both in use.
FROM python:3.11-slim

# libpq for procrastinate's psycopg connector (the cluster's worker queue).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 atelier
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .

USER atelier
ENV ATELIER_HOST=0.0.0.0 \
    ATELIER_DATA_DIR=/var/lib/atelier
VOLUME ["/var/lib/atelier"]
EXPOSE 8000
ENTRYPOINT ["atelier"]
CMD ["serve"]
