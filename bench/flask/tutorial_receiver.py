"""The baseline alertgate is measured against: the Flask receiver TradingView tutorials show.

It trusts a shared secret in the body, parses the alert, "places" the order and answers 200, with
nothing durable, no signature, no dedupe. The broker call is a list append here, so nothing the
real one would cost is charged to it. Run as the tutorials do, under gunicorn's sync workers:

    BENCH_SECRET_MAIN=... gunicorn -w 2 -b 127.0.0.1:PORT --chdir bench/flask tutorial_receiver:app
"""

import json
import logging
import os

from flask import Flask, jsonify, request

app = Flask(__name__)
SECRET = os.environ["BENCH_SECRET_MAIN"]
orders = []
logging.basicConfig(level=logging.INFO)
log = logging.getLogger("webhook")


@app.route("/webhook", methods=["POST"])
def webhook():
    data = json.loads(request.data)
    if data.get("secret") != SECRET:
        return jsonify({"code": "error", "message": "nice try"}), 403
    symbol = data["symbol"].split(":")[-1]
    side = data["action"].upper()
    quantity = data["quantity"]
    order = {"symbol": symbol, "side": side, "quantity": quantity, "id": data.get("id")}
    orders.append(order)
    log.info("order %s %s %s", side, quantity, symbol)
    return jsonify({"code": "success", "order": order})
