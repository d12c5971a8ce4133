"""Tests of sms_microfunnel/tools/sql_array.py: the array literal the gate
sends instead of a list of 100,000 parameters reads back, in PostgreSQL, as
exactly the values it was made of."""

import json
import os
from datetime import datetime

import psycopg2
import pytest
from conftest import load_tool
from hypothesis import given, settings
from hypothesis import strategies as st

sql_array = load_tool("sms_microfunnel", "sql_array")


@pytest.fixture(scope="module")
def cursor():
    try:
        connection = psycopg2.connect(
            dbname="postgres",
            host=os.environ.get("PGHOST") or None,
            port=os.environ.get("PGPORT") or None,
        )
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    with connection, connection.cursor() as cr:
        yield cr
    connection.close()


def read_back(cursor, values, cast):
    cursor.execute(f"SELECT %s::{cast}", [sql_array.array_text(values)])
    return cursor.fetchone()[0]


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["+33612345678", "+13055550100"],
        ["a,b", "{x}", " spaced ", "", "NULL", 'quote"d', "back\\slash", 'a","b'],
        ["é", "日本", "tab\there"],
        ["a", None],
    ],
)
def test_strings_read_back_unchanged(cursor, values):
    assert read_back(cursor, values, "text[]") == values


def test_integers_read_back_unchanged(cursor):
    values = [1, 42, 2_147_483_647]
    assert read_back(cursor, values, "int4[]") == values
    assert sql_array.array_text(values) == "{1,42,2147483647}"


@settings(max_examples=200, deadline=None)
# any text PostgreSQL can hold: no NUL, no lone surrogate (not UTF-8)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=12,
        )
    )
)
def test_any_text_reads_back_unchanged(cursor, values):
    assert read_back(cursor, values, "text[]") == values


def test_booleans_are_refused():
    with pytest.raises(TypeError):
        sql_array.array_text([True, "x"])


@pytest.mark.parametrize(
    ("values", "cast"),
    [
        ([1, None, 2_147_483_647, -5], "int4"),
        ([True, False, None], "bool"),
        ([1.5, None, 0.1, 1e-300, -2.0], "float8"),
        (
            [datetime(2026, 3, 10, 9, 0), datetime(2026, 1, 2, 3, 4, 5, 6789), None],
            "timestamp",
        ),
        (["a,b", "{x}", "NULL", 'quote"d', "back\\slash", "", None], "varchar"),
        (['{"a": "x\\"y", "b": [1, 2]}', None], "jsonb"),
    ],
)
def test_columns_read_back_unchanged(cursor, values, cast):
    """``column_text``: one column of a bulk INSERT or UPDATE, of any type
    the dispatch writes, reads back as the values it was made of."""
    cursor.execute(f"SELECT %s::{cast}[]", [sql_array.column_text(values, cast)])
    got = cursor.fetchone()[0]
    if cast == "jsonb":
        values = [None if v is None else json.loads(v) for v in values]
    assert got == values


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(
                st.characters(
                    blacklist_categories=("Cs",), blacklist_characters="\x00"
                ),
                max_size=12,
            ),
        )
    )
)
def test_any_text_column_reads_back_unchanged(cursor, values):
    cursor.execute("SELECT %s::text[]", [sql_array.column_text(values, "text")])
    assert cursor.fetchone()[0] == values
