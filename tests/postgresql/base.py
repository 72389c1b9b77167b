"""Django's PostgreSQL backend with a cheaper flush, for the test run only.

After each transactional test (browser, MLLP, worker tests) Django empties every table with one
TRUNCATE of all ~80 tables, which costs 0.5 to 3 seconds: PostgreSQL replaces each table's and
index's files. The tables hold a few rows by then, so a DELETE per table does the same in a few
milliseconds; the foreign keys are DEFERRABLE INITIALLY DEFERRED and flush runs the statements in
one transaction, so the order of the tables does not matter. Everything else is the stock backend.
"""

from django.db.backends.postgresql import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade or not tables:
            return super().sql_flush(
                style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(t))};" for t in tables]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
