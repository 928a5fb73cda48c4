"""GET|PUT|DELETE /lists/{allow|block}/{msisdn}: the MSISDN allowlist and blocklist."""

from smsgw import http
from smsgw.logic import lists

app = http.resolver()


@app.get("/lists/<list_name>/<msisdn>")
def get_entry(list_name: str, msisdn: str):
    return http.json_response(200, lists.get_entry(list_name, msisdn))


@app.put("/lists/<list_name>/<msisdn>")
def put_entry(list_name: str, msisdn: str):
    body = http.json_body(app) if app.current_event.body else {}
    note = body.get("note") if isinstance(body, dict) else None
    created, entry = lists.put_entry(list_name, msisdn, http.caller_identity(app), note)
    return http.json_response(201 if created else 200, entry)


@app.delete("/lists/<list_name>/<msisdn>")
def delete_entry(list_name: str, msisdn: str):
    lists.delete_entry(list_name, msisdn, http.caller_identity(app))
    return http.json_response(200, {"deleted": True, "list": list_name, "msisdn": msisdn.lstrip("+")})


lambda_handler = http.handler(app)
