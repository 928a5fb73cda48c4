"""POST /batches, GET /batches/{id}, GET /batches/{id}/messages, DELETE /batches/{id}: fleet sends."""

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


@app.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    return http.json_response(200, batches.get_batch(batch_id))


@app.get("/batches/<batch_id>/messages")
def list_messages(batch_id: str):
    return http.json_response(200, batches.list_messages(batch_id, dict(app.current_event.query_string_parameters or {})))


@app.delete("/batches/<batch_id>")
def cancel_batch(batch_id: str):
    return http.json_response(200, batches.cancel(batch_id))


lambda_handler = http.handler(app)
