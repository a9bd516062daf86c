# The collector as a container image (docs/operations.md, "Containers"; deploy/compose.yaml runs it
# beside mosquitto, InfluxDB and Grafana). Build from the repository root:
#   docker build -t city-telemetry .
# Run with the config mounted read-only and the state (spool, dead letters, KPI state) on a volume:
#   docker run -v $PWD/deploy/collector.toml:/etc/city-telemetry/collector.toml:ro \
#              -v city-telemetry-state:/var/lib/city-telemetry city-telemetry
# Any key can be overridden with CITY_TELEMETRY__<SECTION>__<KEY> (TOML values: strings quoted).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY schemas ./schemas
COPY simulators ./simulators
# The same path as in the final image, so the virtual environment's scripts work after the copy.
RUN python -m venv /opt/city-telemetry \
    && /opt/city-telemetry/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/city-telemetry/bin/city-telemetry --version

FROM python:3.11-slim
# A fixed uid/gid, so that secret files mounted from the host can be given to it (chown 10001).
RUN groupadd --system --gid 10001 city-telemetry \
    && useradd --system --uid 10001 --gid city-telemetry --home-dir /var/lib/city-telemetry \
       --shell /usr/sbin/nologin city-telemetry \
    && install -d -o city-telemetry -g city-telemetry -m 0750 /var/lib/city-telemetry \
    && install -d -m 0755 /etc/city-telemetry
COPY --from=build /opt/city-telemetry /opt/city-telemetry
ENV PATH=/opt/city-telemetry/bin:$PATH \
    PYTHONUNBUFFERED=1
USER city-telemetry
WORKDIR /var/lib/city-telemetry
VOLUME ["/var/lib/city-telemetry"]
# /healthz, /readyz and /metrics when health.listen = "0.0.0.0:9108" (compose sets it).
EXPOSE 9108
# SIGTERM flushes what was received and acknowledges it; give it the time (docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["city-telemetry"]
CMD ["run", "-c", "/etc/city-telemetry/collector.toml"]
