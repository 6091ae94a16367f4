# One image for the three services, the HTTP edge and the simulator; the command picks which one
# runs.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UNIWIZARD_DATA_DIR=/data
COPY pyproject.toml README.md ./
COPY uniwizard ./uniwizard
COPY registry_svc ./registry_svc
COPY router_svc ./router_svc
COPY caller_svc ./caller_svc
COPY edge_svc ./edge_svc
COPY uniwizard_client ./uniwizard_client
COPY uniwizard_sim ./uniwizard_sim
COPY configs ./configs
RUN pip install --no-cache-dir . && mkdir -p /data
# grpc_health_probe-free health checks: the image's own Python asks grpc.health.v1.
COPY scripts/healthcheck.py /usr/local/bin/uniwizard-healthcheck
VOLUME ["/data"]
CMD ["python", "-m", "router_svc"]
