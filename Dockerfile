# One image for the four services; docker-compose.yml picks the service with SERVICE.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY medcard ./medcard
COPY contract ./contract
RUN pip install --no-cache-dir .
# No key is built in: in development the first process generates random keys into
# /var/lib/medcard/keys.json (mode 0600; mount a volume there to share them between the
# services); in production every MEDCARD_*_KEY / MEDCARD_JWT_SECRET must be given.
RUN useradd --system --home-dir /var/lib/medcard medcard && install -d -o medcard -m 700 /var/lib/medcard
USER medcard
ENV SERVICE=identity PORT=8000 MEDCARD_KEYS_FILE=/var/lib/medcard/keys.json
VOLUME /var/lib/medcard
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health')"
CMD ["sh", "-c", "exec uvicorn --factory services.${SERVICE}.app:create --host 0.0.0.0 --port ${PORT} --loop uvloop --http httptools --no-access-log --timeout-keep-alive 30"]
