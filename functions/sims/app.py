"""GET /sims/{msisdn} and PUT|DELETE /sims/{msisdn}/settings: a SIM's delivery queue and its own settings."""

from smsgw import http
from smsgw.logic import sims

app = http.resolver()


@app.get("/sims/<msisdn>")
def get_sim(msisdn: str):
    return http.json_response(200, sims.get_sim(msisdn))


@app.put("/sims/<msisdn>/settings")
def put_settings(msisdn: str):
    return http.json_response(200, sims.put_settings(msisdn, http.json_body(app)))


@app.delete("/sims/<msisdn>/settings")
def delete_settings(msisdn: str):
    return http.json_response(200, sims.delete_settings(msisdn))


lambda_handler = http.handler(app)
