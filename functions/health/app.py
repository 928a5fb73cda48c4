"""GET /health and POST /health/redrive: dead-letter queue depths, the quarantine, Eseye's error rate; redrives."""

from smsgw import http
from smsgw.logic import health

app = http.resolver()


@app.get("/health")
def get_health():
    return http.json_response(200, health.overview())


@app.post("/health/redrive")
def post_redrive():
    return http.json_response(200, health.redrive(http.json_body(app)))


lambda_handler = http.handler(app)
