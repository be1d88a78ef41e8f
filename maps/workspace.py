"""The workspace pages of every role: who is signed in and where they may go (the header),
the accounts page (/admin), the event desk (/desk) and the grid worker's phone page (/m)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maps.pages import render

#: Every workspace page loads these first (the escape, then the shared helpers).
COMMON_SCRIPTS = ["/static/escape.js", "/static/common.js"]


@dataclass(frozen=True)
class Me:
    """The signed-in account as the pages show it."""

    username: str
    label: str
    role: str
    role_name: str
    permissions: frozenset[str]
    areas: tuple[str, ...]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def as_config(self) -> dict[str, Any]:
        return {"username": self.username, "label": self.label, "role": self.role,
                "areas": list(self.areas), "permissions": sorted(self.permissions)}


def nav(me: Me) -> list[tuple[str, str]]:
    """The pages the account's role may open, in the header."""
    out = []
    if me.can("plans:read"):
        out.append(("/", "规划工作台"))
    if me.can("events:act") and me.role != "grid_worker":
        out.append(("/desk", "事件处置台"))
    if me.can("events:read"):
        out.append(("/screen", "指挥中心大屏"))
    if me.can("events:create"):
        out.append(("/m", "网格员（手机）"))
    if me.can("accounts"):
        out.append(("/admin", "账户管理"))
    return out


def _page(template: str, me: Me, here: str, title: str, config: dict[str, Any],
          script: str, styles: list[str], body_class: str = "ws", **values: Any) -> str:
    return render(template, title=title, me=me, nav=nav(me), here=here,
                  config={**config, "me": me.as_config()}, body_class=body_class,
                  styles=styles, scripts=[*COMMON_SCRIPTS, script], **values)


def admin_html(me: Me, roles: dict[str, Any], territories: list[dict[str, Any]],
               timezone: dict[str, str]) -> str:
    """The accounts page: accounts, their roles, areas and keys; the audit log."""
    return _page("admin.html", me, "/admin", "账户管理 · gridmap",
                 {"roles": roles, "territories": territories, "timezone": timezone},
                 "/static/admin.js", ["/static/workspace.css"], roles=roles)


def desk_html(me: Me, config: dict[str, Any]) -> str:
    """The operator's event desk: list and map, filters, detail, the closed loop."""
    return _page("desk.html", me, "/desk", "事件处置台 · gridmap", config,
                 "/static/desk.js", ["/static/workspace.css", "/static/desk.css"],
                 body_class="ws desk", categories=config["categories"])


def phone_html(me: Me, config: dict[str, Any]) -> str:
    """The grid worker's phone page: my grids and position, my events, report, patrol."""
    return render("m.html", title="网格员 · gridmap", me=me, config={
        **config, "me": me.as_config()}, body_class="m", styles=["/static/m.css"],
        scripts=[*COMMON_SCRIPTS, "/static/m.js"], categories=config["categories"])
