"""The optional ``monitoring`` and ``logging`` sections: what an operator watches."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, field_validator

from bot.config.fields import FROZEN, PositiveInt


class MonitoringConfig(BaseModel):
    """`listen`: host:port of /healthz and /metrics; left out, there is no endpoint."""

    model_config = FROZEN

    listen: str | None = None
    # /healthz turns unhealthy when a loop has not completed a round for this long.
    stall_after_seconds: PositiveInt = 120

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be "host:port", e.g. "127.0.0.1:9464"')
        bare = host.strip("[]")
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            if not bare.replace("-", "").replace(".", "").isalnum():
                raise ValueError(f"{host!r} is not an IP address or host name") from None
        return value


class LoggingConfig(BaseModel):
    model_config = FROZEN

    format: Literal["text", "json"] = "text"
