"""Groups of SIMs: PUT|GET|DELETE /groups/{name}, POST /groups/{name}/members, DELETE /groups/{name}/members/{msisdn}, GET /groups."""

from smsgw import http
from smsgw.logic import groups

app = http.resolver()


@app.get("/groups")
def list_groups():
    return http.json_response(200, groups.list_groups(dict(app.current_event.query_string_parameters or {})))


@app.get("/groups/<name>")
def get_group(name: str):
    return http.json_response(200, groups.get_group(name, dict(app.current_event.query_string_parameters or {})))


@app.put("/groups/<name>")
def put_group(name: str):
    created, group = groups.put_group(name, http.json_body(app, groups.BODY_LIMIT), http.caller_identity(app))
    return http.json_response(201 if created else 200, group)


@app.delete("/groups/<name>")
def delete_group(name: str):
    return http.json_response(200, groups.delete_group(name, http.caller_identity(app)))


@app.post("/groups/<name>/members")
def add_members(name: str):
    return http.json_response(200, groups.add_members(name, http.json_body(app, groups.BODY_LIMIT), http.caller_identity(app)))


@app.delete("/groups/<name>/members/<msisdn>")
def remove_member(name: str, msisdn: str):
    return http.json_response(200, groups.remove_member(name, msisdn, http.caller_identity(app)))


lambda_handler = http.handler(app)
