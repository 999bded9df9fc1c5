"""Who a campaign goes to: the active, subscribed members of its lists, narrowed by ``where``.

The ``where:`` filter (:mod:`dispatcher.core.segment`) is translated into SQL
over the JSON ``attributes`` column, so the audience stays one query that the
send queue can ``INSERT ... SELECT`` from, for a million subscribers as for
ten. The translation follows the filter's Python semantics exactly (tests run
both over the same subscribers on SQLite and PostgreSQL): typed comparisons,
a missing attribute is ``None``, and a comparison that cannot be made is
false, never NULL (hence the ``coalesce(..., false)`` around each one).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import sqlalchemy as sa

from dispatcher.core import segment
from dispatcher.core.campaign import Audience
from dispatcher.errors import CampaignError
from dispatcher.store.database import Store
from dispatcher.store.tables import mailing_list_t, membership_t, subscriber_t

Member = tuple[int, str, str, dict[str, Any]]  # id, email, name, attributes
_ORDER = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__", "==": "__eq__"}


class _Attr:
    """SQL expressions for one attribute: its JSON type, its text and its numeric value."""

    def __init__(self, name: str, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self.string_kind = "string" if self.pg else "text"
        column = subscriber_t.c.attributes
        self.builtin = name in segment.BUILTIN_NAMES
        if self.builtin:
            # email, name and domain are columns (or derived from one): always strings.
            if name != "domain":
                self.text: Any = subscriber_t.c[name]
            elif self.pg:
                self.text = sa.func.lower(sa.func.split_part(subscriber_t.c.email, "@", 2))
            else:
                self.text = sa.func.lower(
                    sa.func.substr(subscriber_t.c.email,
                                   sa.func.instr(subscriber_t.c.email, "@") + 1))
            self.kind: Any = sa.literal(self.string_kind)
        elif self.pg:
            self.kind = sa.func.jsonb_typeof(column.op("->")(sa.literal(name)))
            self.text = column.op("->>", return_type=sa.Text)(sa.literal(name))
        else:
            path = sa.literal(f'$."{name}"')
            self.kind = sa.func.json_type(column, path)
            self.text = sa.func.json_extract(column, path)

    def is_string(self) -> Any:
        return sa.true() if self.builtin else self.kind == self.string_kind

    def string(self) -> Any:
        # Python compares code points; so does SQLite's BINARY, PostgreSQL needs "C".
        return sa.collate(self.text, "C") if self.pg else self.text

    def number(self) -> Any:
        t = sa.func.trim(self.text)
        if self.pg:
            numeric = self.text.op("~")(r"^ *-?[0-9]+(\.[0-9]+)? *$")
            return sa.case(
                (self.kind == "number", sa.cast(self.text, sa.Float)),
                (sa.and_(self.kind == "string", numeric), sa.cast(t, sa.Float)))
        # GLOB cannot say -?[0-9]+(\.[0-9]+)?; these seven tests together can.
        numeric = sa.and_(t.op("NOT GLOB")("*[^0-9.-]*"), t.op("GLOB")("*[0-9]*"),
                          t.op("NOT GLOB")("?*-*"), t.op("NOT GLOB")("*.*.*"),
                          t.op("NOT GLOB")(".*"), t.op("NOT GLOB")("*."),
                          t.op("NOT GLOB")("-.*"))
        return sa.case(
            (self.kind.in_(("integer", "real")), sa.cast(self.text, sa.Float)),
            (sa.and_(self.kind == "text", numeric), sa.cast(t, sa.Float)))

    def boolean(self, value: bool) -> Any:
        if self.builtin:
            return sa.false()
        if self.pg:
            return sa.and_(self.kind == "boolean", self.text == ("true" if value else "false"))
        return self.kind == ("true" if value else "false")

    def is_none(self) -> Any:
        if self.builtin:
            return sa.false()
        return sa.or_(self.kind.is_(None), self.kind == "null")


def _equal_or_order(attr: _Attr, op: str, value: segment.Literal) -> Any:
    """The SQL for ``attr OP value`` with op in == < <= > >= (!= is NOT ==)."""
    if value is None:
        return attr.is_none() if op == "==" else sa.false()
    if isinstance(value, bool):
        return attr.boolean(value) if op == "==" else sa.false()
    if isinstance(value, str):
        return sa.and_(attr.is_string(), getattr(attr.string(), _ORDER[op])(value))
    return getattr(attr.number(), _ORDER[op])(float(value))


def _sql(node: segment.Node, dialect: str) -> Any:
    if isinstance(node, segment.And):
        return sa.and_(*(_sql(p, dialect) for p in node.parts))
    if isinstance(node, segment.Or):
        return sa.or_(*(_sql(p, dialect) for p in node.parts))
    if isinstance(node, segment.Not):
        return sa.not_(_sql(node.part, dialect))
    attr = _Attr(node.name, dialect)
    if isinstance(node.value, tuple):
        found = sa.or_(sa.false(), *(sa.func.coalesce(_equal_or_order(attr, "==", v), False)
                                     for v in node.value))
        return found if node.op == "in" else sa.not_(found)
    op = "==" if node.op == "!=" else node.op
    condition = sa.func.coalesce(_equal_or_order(attr, op, node.value), False)
    return sa.not_(condition) if node.op == "!=" else condition


def filter_sql(where: str, dialect: str) -> Any:
    """A SQL boolean for a ``where:`` filter over the subscriber table."""
    return _sql(segment.parse(where), dialect)


def audience_query(store: Store, audience: Audience, *, path: str | None = None) -> sa.Select[Any]:
    """Subscribers (id, email, name, attributes) of the audience, each once.

    Raises :class:`CampaignError` naming a list that does not exist, so a
    typo in the YAML stops the send instead of mailing nobody.
    """
    with store.engine.connect() as conn:
        found: dict[str, int] = dict(conn.execute(
            sa.select(mailing_list_t.c.name, mailing_list_t.c.id)
            .where(mailing_list_t.c.name.in_(audience.lists))).all())
    missing = [name for name in audience.lists if name not in found]
    if missing:
        raise CampaignError(f"unknown list {missing[0]!r} in audience (import it first with "
                            f"'dispatcher import FILE --list {missing[0]}')", path=path)
    member = (sa.select(membership_t.c.subscriber_id)
              .where(membership_t.c.list_id.in_(found.values()),
                     membership_t.c.status == "subscribed"))
    query = (sa.select(subscriber_t.c.id, subscriber_t.c.email, subscriber_t.c.name,
                       subscriber_t.c.attributes)
             .where(subscriber_t.c.status == "active", subscriber_t.c.id.in_(member)))
    if audience.where:
        try:
            query = query.where(filter_sql(audience.where, store.dialect))
        except segment.SegmentError as exc:
            raise CampaignError(f"audience.where: {exc.message}", path=path,
                                column=exc.column) from exc
    return query.order_by(subscriber_t.c.id)


def members(store: Store, audience: Audience, *, path: str | None = None,
            limit: int | None = None) -> Generator[Member, None, None]:
    """Stream the audience as (id, email, name, attributes), in id order."""
    query = audience_query(store, audience, path=path)
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
        try:
            for row in result:
                yield row.id, row.email, row.name, row.attributes or {}
        finally:
            # A caller that stops early must not leave a server-side cursor open.
            result.close()


def unused_names(store: Store, audience: Audience) -> list[str]:
    """Attributes the ``where`` filter reads that no subscriber has at all (likely typos)."""
    if not audience.where:
        return []
    wanted = sorted(segment.names(segment.parse(audience.where)) - set(segment.BUILTIN_NAMES))
    missing = []
    with store.engine.connect() as conn:
        for name in wanted:
            kind = _Attr(name, store.dialect).kind
            found = conn.execute(
                sa.select(subscriber_t.c.id).where(kind.is_not(None)).limit(1)).first()
            if found is None:
                missing.append(name)
    return missing


def count(store: Store, audience: Audience, *, path: str | None = None) -> int:
    query = audience_query(store, audience, path=path).order_by(None).subquery()
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(query)).scalar_one())
