"""ufw rules that limit the vLLM ports to given source networks.

The role tags every rule it adds with RULE_COMMENT, so a later run can tell its
own rules from the operator's and remove the ones no longer wanted (a network
taken off the list, an instance removed) without touching anything else.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any, Dict, Iterable, List, Optional

RULE_COMMENT = "gpufleet.vllm"

# One line of `ufw show added`, e.g.
#   ufw allow from 10.0.0.0/8 to any port 8000 proto tcp comment 'gpufleet.vllm'
#   ufw deny 8000/tcp comment 'gpufleet.vllm'
_PORT_PROTO = re.compile(r"^(\d+)/(tcp|udp)$")

Rule = Dict[str, Any]


def invalid_networks(networks: Iterable[Any]) -> List[str]:
    """The entries that are not an IPv4/IPv6 address or network (host bits may be set)."""
    bad = []
    for net in networks:
        try:
            ipaddress.ip_network(str(net), strict=False)
        except ValueError:
            bad.append(str(net))
    return bad


def _rule(action: str, port: int, source: str = "any") -> Rule:
    return {"rule": action, "port": str(port), "proto": "tcp", "from_ip": source, "comment": RULE_COMMENT}


def desired_rules(ports: Iterable[Any], networks: Iterable[Any], ssh_port: Optional[int]) -> Dict[str, List[Rule]]:
    """The role's rules in three groups, applied in this order: ssh, allow, deny.

    ufw matches the first rule that fits, so every allow must sit above the
    denies: the role appends SSH (kept open before ufw is enabled), inserts the
    allows at the top of their address family, and appends one deny per port.
    """
    unique_ports = sorted({int(p) for p in ports})
    return {
        "ssh": [_rule("allow", int(ssh_port))] if ssh_port else [],
        "allow": [
            dict(_rule("allow", port, str(ipaddress.ip_network(str(net), strict=False))),
                 ipv6=ipaddress.ip_network(str(net), strict=False).version == 6)
            for port in unique_ports
            for net in networks
        ],
        "deny": [_rule("deny", port) for port in unique_ports],
    }


def parse_added(show_added: str) -> List[Rule]:
    """The rules of `ufw show added` that carry RULE_COMMENT, in the same form as desired_rules."""
    found: List[Rule] = []
    for line in show_added.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) < 3 or words[0] != "ufw" or words[-2:] != ["comment", RULE_COMMENT]:
            continue
        words = words[1:-2]
        action = words.pop(0)
        if words and words[0] in ("in", "out"):
            if words.pop(0) == "out":
                continue
        fields = {"from": "any", "port": "", "proto": ""}
        if len(words) == 1:  # short form: "8000/tcp"
            match = _PORT_PROTO.match(words[0])
            if not match:
                continue
            fields["port"], fields["proto"] = match.groups()
        else:
            pairs = iter(words)
            for key in pairs:
                value = next(pairs, "")
                if key in ("from", "port", "proto"):
                    fields[key] = value
        if fields["from"] != "any":
            fields["from"] = str(ipaddress.ip_network(fields["from"], strict=False))
        if not fields["port"]:
            continue
        rule = _rule(action, int(fields["port"]), fields["from"])
        rule["proto"] = fields["proto"] or "tcp"
        found.append(rule)
    return found


def _key(rule: Rule) -> tuple:
    return (rule["rule"], str(rule["port"]), rule["proto"], rule["from_ip"])


def stale_rules(show_added: str, desired: Dict[str, List[Rule]]) -> List[Rule]:
    """This role's rules that are on the host but no longer wanted."""
    wanted = {_key(rule) for group in desired.values() for rule in group}
    return [rule for rule in parse_added(show_added) if _key(rule) not in wanted]
