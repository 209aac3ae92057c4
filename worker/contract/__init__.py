"""The message contract: the order model, its field rules, and errors that name the order, the field and the fix."""
from worker.contract.errors import FieldError, OrderInvalid
from worker.contract.fields import CENT, MAX_TEXT
from worker.contract.order import (
           Address,
           Customer,
           Item,
           Order,
           Payment,
           Subscription,
           order_json_schema,
           parse_order,
)

__all__ = ["CENT", "MAX_TEXT", "Address", "Customer", "FieldError", "Item", "Order", "OrderInvalid", "Payment",
           "Subscription", "order_json_schema", "parse_order"]
