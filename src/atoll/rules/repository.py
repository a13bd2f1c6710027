"""Rules, channels and report definitions in the database."""

from __future__ import annotations

import sqlalchemy as sa

from atoll.core.errors import Conflict, NotFound
from atoll.rules import db
from atoll.rules.model import ChannelSpec, Rule


class RuleRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ rules

    def list_rules(self, project: str | list[str] | None = None) -> list[Rule]:
        q = sa.select(db.rules.c.spec).order_by(db.rules.c.project, db.rules.c.id)
        if isinstance(project, str):
            q = q.where(db.rules.c.project == project)
        elif project is not None:
            q = q.where(db.rules.c.project.in_(project))
        with self.engine.connect() as c:
            return [Rule.model_validate(row.spec) for row in c.execute(q)]

    def versions(self) -> dict[str, int]:
        """Each rule's ``updated_at``: what changed since another process last looked."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(db.rules.c.id, db.rules.c.updated_at))
            return {rule_id: updated for rule_id, updated in rows}

    def get_rule(self, rule_id: str) -> Rule:
        with self.engine.connect() as c:
            row = c.execute(sa.select(db.rules.c.spec).where(db.rules.c.id == rule_id)).first()
        if row is None:
            raise NotFound(f"rule {rule_id!r} not found")
        return Rule.model_validate(row.spec)

    def exists(self, rule_id: str) -> bool:
        with self.engine.connect() as c:
            return (
                c.execute(sa.select(db.rules.c.id).where(db.rules.c.id == rule_id)).first()
                is not None
            )

    def create_rule(self, rule: Rule, now: int) -> Rule:
        try:
            with self.engine.begin() as c:
                c.execute(
                    sa.insert(db.rules).values(
                        id=rule.id,
                        project=rule.project,
                        spec=rule.dump(),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(
                f"rule {rule.id!r} already exists", hint="choose another id, or PUT to replace it"
            ) from None
        return rule

    def put_rule(self, rule: Rule, now: int) -> Rule:
        """Create or replace."""
        with self.engine.begin() as c:
            old = c.execute(sa.select(db.rules.c.project).where(db.rules.c.id == rule.id)).first()
            if old is None:
                c.execute(
                    sa.insert(db.rules).values(
                        id=rule.id,
                        project=rule.project,
                        spec=rule.dump(),
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                if old.project != rule.project:
                    raise Conflict(f"rule {rule.id!r} belongs to project {old.project!r}")
                c.execute(
                    sa.update(db.rules)
                    .where(db.rules.c.id == rule.id)
                    .values(spec=rule.dump(), updated_at=now)
                )
        return rule

    def delete_rule(self, rule_id: str) -> None:
        with self.engine.begin() as c:
            n = c.execute(sa.delete(db.rules).where(db.rules.c.id == rule_id)).rowcount
        if not n:
            raise NotFound(f"rule {rule_id!r} not found")

    # ------------------------------------------------------------ channels

    def list_channels(self, project: str | None = None) -> list[ChannelSpec]:
        t = db.channels
        q = sa.select(t).order_by(t.c.project, t.c.name)
        if project is not None:
            q = q.where(t.c.project == project)
        with self.engine.connect() as c:
            return [
                ChannelSpec(name=r.name, project=r.project, type=r.type, config=r.config)
                for r in c.execute(q)
            ]

    def put_channel(self, spec: ChannelSpec) -> ChannelSpec:
        t = db.channels
        with self.engine.begin() as c:
            c.execute(sa.delete(t).where(t.c.project == spec.project, t.c.name == spec.name))
            c.execute(
                sa.insert(t).values(
                    project=spec.project, name=spec.name, type=spec.type, config=spec.config
                )
            )
        return spec

    def delete_channel(self, project: str, name: str) -> None:
        t = db.channels
        with self.engine.begin() as c:
            n = c.execute(sa.delete(t).where(t.c.project == project, t.c.name == name)).rowcount
        if not n:
            raise NotFound(f"channel {name!r} not found in project {project!r}")
