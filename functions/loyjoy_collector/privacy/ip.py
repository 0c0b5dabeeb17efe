"""Visitor addresses, cut to what analytics needs."""

from __future__ import annotations

import ipaddress


def truncate_ip(ip: str | None) -> str | None:
    """/24 for IPv4, /48 for IPv6: enough for a country, not for a person."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
