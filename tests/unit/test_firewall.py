"""ufw rules for the vLLM ports: what the role wants, and which of its old rules go."""

from ansible_collections.gpufleet.vllm.plugins.module_utils.firewall import (
    RULE_COMMENT,
    desired_rules,
    invalid_networks,
    parse_added,
    stale_rules,
)

# `ufw show added` as ufw 0.36.2 (Debian 12) printed it after the role's rules
# and one rule of the operator's own (port 80, no comment).
SHOW_ADDED = """Added user rules (see 'ufw status' for running firewall):
ufw allow from 10.88.0.1 to any port 8000 proto tcp comment 'gpufleet.vllm'
ufw allow 22/tcp comment 'gpufleet.vllm'
ufw allow 80/tcp
ufw deny 8000/tcp comment 'gpufleet.vllm'
ufw allow from fd00::/64 to any port 8000 proto tcp comment 'gpufleet.vllm'
"""


def test_rules_allow_each_network_on_each_port_then_deny_each_port() -> None:
    rules = desired_rules([8001, 8000, 8000], ["10.0.0.0/8", "192.0.2.7", "fd00::/64"], 22)
    assert [(r["rule"], r["port"], r["from_ip"]) for r in rules["ssh"]] == [("allow", "22", "any")]
    assert [(r["port"], r["from_ip"], r["ipv6"]) for r in rules["allow"]] == [
        ("8000", "10.0.0.0/8", False),
        ("8000", "192.0.2.7/32", False),
        ("8000", "fd00::/64", True),
        ("8001", "10.0.0.0/8", False),
        ("8001", "192.0.2.7/32", False),
        ("8001", "fd00::/64", True),
    ]
    assert [(r["rule"], r["port"], r["from_ip"]) for r in rules["deny"]] == [
        ("deny", "8000", "any"),
        ("deny", "8001", "any"),
    ]
    assert all(r["comment"] == RULE_COMMENT and r["proto"] == "tcp" for group in rules.values() for r in group)


def test_no_ssh_rule_when_the_ssh_port_is_zero() -> None:
    assert desired_rules([8000], ["10.0.0.0/8"], 0)["ssh"] == []


def test_networks_with_host_bits_are_normalised_like_ufw_does() -> None:
    assert desired_rules([8000], ["10.1.2.3/8"], 0)["allow"][0]["from_ip"] == "10.0.0.0/8"


def test_parse_added_reads_only_the_roles_rules_in_both_forms() -> None:
    found = [(r["rule"], r["port"], r["proto"], r["from_ip"]) for r in parse_added(SHOW_ADDED)]
    assert found == [
        ("allow", "8000", "tcp", "10.88.0.1/32"),
        ("allow", "22", "tcp", "any"),
        ("deny", "8000", "tcp", "any"),
        ("allow", "8000", "tcp", "fd00::/64"),
    ]


def test_nothing_is_stale_when_the_host_matches_the_settings() -> None:
    wanted = desired_rules([8000], ["10.88.0.1/32", "fd00::/64"], 22)
    assert stale_rules(SHOW_ADDED, wanted) == []


def test_a_network_taken_off_the_list_and_a_removed_port_are_stale() -> None:
    wanted = desired_rules([8001], ["10.88.0.1"], 22)
    stale = [(r["rule"], r["port"], r["from_ip"]) for r in stale_rules(SHOW_ADDED, wanted)]
    assert stale == [("allow", "8000", "10.88.0.1/32"), ("deny", "8000", "any"), ("allow", "8000", "fd00::/64")]


def test_the_operators_own_rules_are_never_stale() -> None:
    stale = stale_rules(SHOW_ADDED, desired_rules([9000], ["10.0.0.0/8"], 0))
    assert all(r["port"] != "80" for r in stale)
    assert len(stale) == 4


def test_invalid_networks_names_each_bad_entry() -> None:
    assert invalid_networks(["10.0.0.0/8", "192.0.2.7", "fd00::/64", "10.0.0.0/33", "office", "300.1.1.1"]) == [
        "10.0.0.0/33",
        "office",
        "300.1.1.1",
    ]
