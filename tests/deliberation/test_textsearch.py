import re
import sqlite3

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deliberation.textsearch import (
    CJK_RANGES,
    MAX_QUERY_TERMS,
    MAX_WORD_CHARS,
    fts5_match,
    index_terms,
    pg_tsquery,
    query_terms,
)

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TERM = re.compile(r"[a-z0-9]+")
HOSTILE_QUERIES = [
    '" OR 1=1 --',
    "NEAR(",
    "NEAR(a b, 2)",
    "'; drop table proposals; --",
    'body:"x" AND NOT y',
    "^start + next",
    "a & !b | c:* <-> d",
    "x\x00\\'\"",
]
PROPOSAL = "小区3号楼电梯维修方案"


@pytest.fixture(scope="module")
def postgres():
    try:
        connection = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL must be reachable at {POSTGRES_URL}: {error}")
    with connection:
        yield connection


@pytest.fixture(scope="module")
def sqlite():
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE doc USING fts5(terms, tokenize='unicode61')")
    connection.execute("CREATE VIRTUAL TABLE vocabulary USING fts5vocab(doc, 'instance')")
    yield connection
    connection.close()


def found_by_sqlite(connection, document: str, query: str) -> bool:
    connection.execute("DELETE FROM doc")
    connection.execute("INSERT INTO doc (terms) VALUES (?)", (index_terms(document),))
    match = fts5_match(query_terms(query))
    return connection.execute("SELECT count(*) FROM doc WHERE doc MATCH ?", (match,)).fetchone()[0]


def found_by_postgres(connection, document: str, query: str) -> bool:
    return connection.execute(
        "SELECT to_tsvector('simple', %s) @@ to_tsquery('simple', %s)",
        (index_terms(document), pg_tsquery(query_terms(query))),
    ).fetchone()[0]


def sqlite_tokens(connection, text: str) -> list[str]:
    connection.execute("DELETE FROM doc")
    connection.execute("INSERT INTO doc (terms) VALUES (?)", (text,))
    rows = connection.execute("SELECT term FROM vocabulary ORDER BY offset").fetchall()
    return [term for (term,) in rows]


def postgres_tokens(connection, text: str) -> list[str]:
    rows = connection.execute(
        "SELECT token FROM ts_parse('default', %s) WHERE tokid <> 12", (text,)
    ).fetchall()  # 12: blank
    return [token for (token,) in rows]


def test_cjk_run_gives_characters_then_bigrams():
    assert index_terms("电梯维修") == (
        "z07535 z068af z07ef4 z04fee z07535068af z068af07ef4 z07ef404fee"
    )


def test_words_are_folded_and_kept_as_they_are():
    assert index_terms("Elevator ＥＬＥＶＡＴＯＲ room 502, Straße") == (
        "elevator elevator room 502 strasse"
    )


def test_latin_accents_are_taken_off():
    assert index_terms("Café naïve Müller") == "cafe naive muller"


def test_words_outside_ascii_are_hex_encoded():
    assert index_terms("дом Δ") == "w004340043e0043c w003b4"


def test_words_postgres_would_split_are_hex_encoded():
    assert index_terms("1e5x 1e5") == "w00031000650003500078 1e5"


def test_words_looking_like_encoded_terms_are_hex_encoded():
    assert query_terms("z07535") == ["w0007a0003000037000350003300035"]
    assert query_terms("z07535") != query_terms("电")


def test_several_texts_are_not_joined_into_one_run():
    assert index_terms("电", "梯") == "z07535 z068af"


def test_long_words_are_cut_alike_in_index_and_query():
    word = "a" * (MAX_WORD_CHARS + 10)

    assert index_terms(word) == "a" * MAX_WORD_CHARS
    assert query_terms(word + "bbb") == ["a" * MAX_WORD_CHARS]


def test_query_of_one_cjk_character_asks_for_it():
    assert query_terms("梯") == ["z068af"]


def test_query_of_a_cjk_word_asks_for_its_bigrams():
    assert query_terms("电梯维修") == ["z07535068af", "z068af07ef4", "z07ef404fee"]


def test_query_terms_keep_order_without_repeats():
    assert query_terms("Repair 电梯 repair 电梯, 502") == ["repair", "z07535068af", "502"]


def test_query_terms_are_capped():
    terms = query_terms(" ".join(f"w{n}x" for n in range(100)))

    assert len(terms) == MAX_QUERY_TERMS
    assert terms[0] == "w0x"


@pytest.mark.parametrize(
    "query", ["", "   ", "，。！？", "---", "*", '"()"', "\u200b\u202e", "\x00\\'\""]
)
def test_query_without_words_has_no_terms(query):
    assert query_terms(query) == []


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_query_gives_plain_terms(query):
    terms = query_terms(query)

    assert all(TERM.fullmatch(term) for term in terms)


def test_match_expressions_quote_every_term_and_prefix_the_last_word():
    assert fts5_match(["z07535068af", "eleva"]) == '"z07535068af" AND "eleva"*'
    assert pg_tsquery(["z07535068af", "eleva"]) == "z07535068af & eleva:*"


def test_cjk_terms_are_never_prefixed():
    assert fts5_match(["eleva", "z07535068af"]) == '"eleva" AND "z07535068af"'
    assert pg_tsquery(["eleva", "z07535"]) == "eleva & z07535"


def test_prefix_can_be_turned_off():
    assert fts5_match(["eleva"], prefix_last=False) == '"eleva"'
    assert pg_tsquery(["eleva"], prefix_last=False) == "eleva"


@pytest.mark.parametrize("terms", [[], ['x" OR "y'], ["a b"], ["NEAR("], ["Elevator"], ["*"]])
def test_match_expressions_refuse_anything_but_terms(terms):
    with pytest.raises(ValueError):
        fts5_match(terms)
    with pytest.raises(ValueError):
        pg_tsquery(terms)


@pytest.mark.parametrize("query", ["电梯", "电梯维修", "维修", "梯", "3号楼", "小区", "维修方案"])
def test_chinese_words_are_found_inside_longer_text(sqlite, postgres, query):
    assert found_by_sqlite(sqlite, PROPOSAL, query)
    assert found_by_postgres(postgres, PROPOSAL, query)


@pytest.mark.parametrize(
    "document, query",
    [
        ("电动车充电桩与楼梯", "电梯"),
        ("电 梯", "电梯"),
        (PROPOSAL, "梯电"),
        (PROPOSAL, "电梯改造"),
        (PROPOSAL, "4号楼"),
    ],
)
def test_chinese_words_are_not_found_from_scattered_characters(sqlite, postgres, document, query):
    assert not found_by_sqlite(sqlite, document, query)
    assert not found_by_postgres(postgres, document, query)


@pytest.mark.parametrize(
    "query", ["elevator", "ELEVATOR", "Elevator", "ＥＬＥＶＡＴＯＲ", "ｅｌｅｖａｔｏｒ"]
)
def test_english_is_found_whatever_the_case_or_width(sqlite, postgres, query):
    document = "The ELEVATOR in building 3 needs repair"

    assert found_by_sqlite(sqlite, document, query)
    assert found_by_postgres(postgres, document, query)


def test_fullwidth_document_is_found_by_ascii_query(sqlite, postgres):
    assert found_by_sqlite(sqlite, "ＥＬＥＶＡＴＯＲ ５０２", "elevator 502")
    assert found_by_postgres(postgres, "ＥＬＥＶＡＴＯＲ ５０２", "elevator 502")


def test_last_word_is_found_as_it_is_being_typed(sqlite, postgres):
    document = "电梯 elevator repair"

    for query in ["eleva", "电梯 eleva", "repair ele", "elevator r"]:
        assert found_by_sqlite(sqlite, document, query), query
        assert found_by_postgres(postgres, document, query), query


def test_only_the_last_word_is_a_prefix(sqlite, postgres):
    assert not found_by_sqlite(sqlite, "elevator repair", "eleva repair")
    assert not found_by_postgres(postgres, "elevator repair", "eleva repair")


@pytest.mark.parametrize("query", ["cafe", "Café", "caf", "pres", "près", "дом", "до"])
def test_accented_and_other_script_words_are_found_while_typing(sqlite, postgres, query):
    document = "Café près du parc, дом 3"

    assert found_by_sqlite(sqlite, document, query)
    assert found_by_postgres(postgres, document, query)


def test_all_query_terms_must_match(sqlite, postgres):
    assert not found_by_sqlite(sqlite, PROPOSAL, "电梯 elevator")
    assert not found_by_postgres(postgres, PROPOSAL, "电梯 elevator")


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_run_safely_on_both_engines(sqlite, postgres, query):
    document = "or 1 near a b drop table proposals body x and not y start next c d"

    found_by_sqlite(sqlite, document, query)
    found_by_postgres(postgres, document, query)


def test_every_cjk_character_is_one_token_on_both_engines(sqlite, postgres):
    characters = [chr(code) for low, high in CJK_RANGES for code in range(low, high + 1)]
    text = index_terms(" ".join(characters))
    terms = text.split()

    assert len(terms) >= len(characters)  # ゟ and ヿ are two characters after NFKC
    assert sqlite_tokens(sqlite, text) == terms
    assert postgres_tokens(postgres, text) == terms


@settings(max_examples=100, database=None, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_every_term_is_one_token_on_both_engines(sqlite, postgres, text):
    terms = index_terms(text).split()

    assert all(TERM.fullmatch(term) for term in terms)
    assert sqlite_tokens(sqlite, " ".join(terms)) == terms
    assert postgres_tokens(postgres, " ".join(terms)) == terms


@settings(max_examples=100, database=None, deadline=None)
@given(st.text(alphabet="0123456789eEzZwWabcdefx ", min_size=1, max_size=30))
def test_digit_and_hex_words_are_one_token_on_both_engines(sqlite, postgres, text):
    terms = index_terms(text).split()

    assert sqlite_tokens(sqlite, " ".join(terms)) == terms
    assert postgres_tokens(postgres, " ".join(terms)) == terms


@settings(max_examples=100, database=None, deadline=None)
@given(st.text(max_size=40))
def test_any_query_gives_terms_both_engines_accept(sqlite, postgres, query):
    terms = query_terms(query)
    if not terms:
        return

    assert all(TERM.fullmatch(term) for term in terms)
    sqlite.execute("SELECT count(*) FROM doc WHERE doc MATCH ?", (fts5_match(terms),))
    postgres.execute("SELECT to_tsquery('simple', %s)", (pg_tsquery(terms),))
