"""SANDBOX ONLY, never part of WeChat Pay: endpoints under /sandbox/ for tests and `make run`'s demo.

- `POST /sandbox/orders/{out_trade_no}/pay`: pay an order without a browser,
  so demo gifts go through notifications like real ones;
- `POST /sandbox/orders/{out_trade_no}/notify`: send the order's notification
  again (a duplicate, as WeChat Pay may send);
- `GET /sandbox/deliveries[?out_trade_no=…]`: every notification delivery,
  its attempts and last status;
- `POST /sandbox/platform-keys/rotate`: sign with a new platform key from now on.

No authentication: the sandbox listens on loopback and holds no real money.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from services.payments.sandbox.deps import SimulatorDep

router = APIRouter(prefix="/sandbox", tags=["sandbox only"])


@router.post("/orders/{out_trade_no}/pay")
async def pay(out_trade_no: str, sim: SimulatorDep) -> dict[str, object]:
    order = sim.orders.by_trade_no(out_trade_no)
    newly_paid = sim.pay(order)
    return {
        "out_trade_no": out_trade_no,
        "trade_state": str(order.trade_state),
        "transaction_id": order.transaction_id,
        "newly_paid": newly_paid,
    }


@router.post("/orders/{out_trade_no}/notify", status_code=202)
async def notify_again(out_trade_no: str, sim: SimulatorDep) -> dict[str, object]:
    return sim.resend(sim.orders.by_trade_no(out_trade_no)).view()


@router.get("/deliveries")
async def deliveries(sim: SimulatorDep, out_trade_no: str | None = None) -> list[dict[str, object]]:
    return [delivery.view() for delivery in sim.notifier.deliveries(out_trade_no)]


@router.post("/platform-keys/rotate")
async def rotate(sim: SimulatorDep) -> dict[str, object]:
    # Making an RSA key takes a noticeable moment: not on the event loop.
    serial = await asyncio.to_thread(sim.keys.rotate)
    return {"serial": serial, "serials": sim.keys.serials()}
