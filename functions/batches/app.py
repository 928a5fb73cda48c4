"""POST /batches, GET /batches, GET /batches/{id}, GET /batches/{id}/messages, DELETE /batches/{id}: fleet sends."""

from smsgw import http
from smsgw.logic import batches

app = http.resolver()


@app.post("/batches")
def post_batch():
    _, batch = batches.accept(
        http.json_body(app, limit=batches.BODY_LIMIT),
        http.api_base_url(app),
        http.caller_identity(app),
        idempotency_key=http.header(app, "Idempotency-Key"),
    )
    return http.json_response(202, batch)


@app.get("/batches")
def list_batches():
    return http.json_response(200, batches.list_batches(dict(app.current_event.query_string_parameters or {})))


@app.get("/batches/<id>")
def get_batch(id: str):
    return http.json_response(200, batches.get_batch(id))


@app.get("/batches/<id>/messages")
def list_messages(id: str):
    return http.json_response(200, batches.list_messages(id, dict(app.current_event.query_string_parameters or {})))


@app.delete("/batches/<id>")
def cancel_batch(id: str):
    return http.json_response(200, batches.cancel(id))


lambda_handler = http.handler(app)
