"""Import of existing patient data and POS orders from CSV/XLSX files, and the staff page's batches."""

from smileloop.imports.services.customers import customers_import
from smileloop.imports.services.orders import orders_import
from smileloop.imports.services.report import ImportReport

__all__ = ["ImportReport", "customers_import", "orders_import"]
