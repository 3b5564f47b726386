"""Host list parsing (module_utils/hostlist.py) and the gpufleet.vllm.hostlist inventory plugin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils.hostlist import (
    HostEntry,
    HostlistError,
    decode_hostlist,
    parse_address,
    parse_hostlist,
    scalar,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "hostlists"
EXAMPLE = ROOT / "inventories" / "hostlist-example" / "gpufleet.hostlist.yml"


def parse_file(name: str) -> list[dict[str, Any]]:
    path = DATA / name
    entries = parse_hostlist(path.read_text(), source=str(path), require_header=name.endswith(".csv"))
    return [asdict(entry) for entry in entries]


def problems(text: str, require_header: bool = False) -> list[tuple[int, str]]:
    with pytest.raises(HostlistError) as caught:
        parse_hostlist(text, source="fleet.hosts", require_header=require_header)
    return [(problem.line, problem.message) for problem in caught.value.problems]


# --- Good files --------------------------------------------------------------


def test_plain_list_names_addresses_ports_and_comments() -> None:
    assert parse_file("plain.hosts") == [
        {"name": "gpu-node-01.example.internal", "line": 3, "group": None, "variables": {}},
        {"name": "GPU-Node-02.example.internal", "line": 4, "group": None, "variables": {"ansible_port": 2222}},
        {"name": "10.0.0.15", "line": 5, "group": None, "variables": {}},
        {"name": "10.0.0.16", "line": 6, "group": None, "variables": {"ansible_port": 22}},
        {"name": "2001:db8::17", "line": 7, "group": None, "variables": {}},
        {"name": "2001:db8::18", "line": 8, "group": None, "variables": {"ansible_port": 2200}},
        {"name": "localhost", "line": 9, "group": None, "variables": {}},
    ]


def test_csv_maps_columns_to_variables_with_types() -> None:
    assert parse_file("fleet.csv") == [
        {
            "name": "gpu-a1.example.internal",
            "line": 4,
            "group": "h100",
            "variables": {
                "gpufleet_gpu_type": "H100-80GB",
                "vllm_model": "Qwen/Qwen2.5-7B-Instruct",
                "vllm_port": 8000,
                "ansible_user": "ubuntu",
                "vllm_max_model_len": 8192,
                "vllm_trust_remote_code": False,
                "conda_python_version": "3.10",
                "vllm_gpu_memory_utilization": "0.9",
            },
        },
        {
            "name": "gpu-a2.example.internal",
            "line": 5,
            "group": "h100",
            "variables": {
                "gpufleet_gpu_type": "H100-80GB",
                "vllm_model": "org/model,with-comma",
                "vllm_port": 8001,
                "vllm_trust_remote_code": True,
                "ansible_port": 2222,
            },
        },
        {"name": "10.1.0.7", "line": 6, "group": None, "variables": {}},
        {
            "name": "2001:db8::7",
            "line": 7,
            "group": "l40s",
            "variables": {
                "gpufleet_gpu_type": "L40S",
                "vllm_port": 9000,
                "ansible_user": "admin",
                "vllm_max_model_len": -1,
                "conda_python_version": "3.11",
                "ansible_port": 22,
            },
        },
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("header-only.csv", "line 1: no hosts: the CSV header is the only line. Fix: add the hosts"),
        ("comments-only.hosts", "line 1: no hosts: lines 1-3 hold only comments and blank lines. Fix: add the hosts"),
    ],
)
def test_files_without_hosts_are_refused(name: str, expected: str) -> None:
    # A play on an empty inventory matches nothing and "succeeds"; an empty list must fail instead.
    path = DATA / name
    with pytest.raises(HostlistError) as caught:
        parse_file(name)
    assert str(caught.value).startswith(f"{path}: 1 problem in the host list:\n  {expected}")


def test_single_column_csv_header() -> None:
    entries = parse_hostlist("host\ngpu-01\n", require_header=True)
    assert [entry.name for entry in entries] == ["gpu-01"]


def test_ansible_host_column_is_checked_and_canonical() -> None:
    entries = parse_hostlist("host,ansible_host\ngpu-01,2001:DB8:0::1\n")
    assert entries[0].variables == {"ansible_host": "2001:db8::1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu-01", ("gpu-01", None)),
        ("gpu-01.example.internal:22", ("gpu-01.example.internal", 22)),
        ("192.168.1.10:65535", ("192.168.1.10", 65535)),
        ("fe80::1", ("fe80::1", None)),
        ("2001:db8::1:22", ("2001:db8::1:22", None)),  # a bare IPv6 address never carries a port
        ("[fe80::1]", ("fe80::1", None)),
        ("[2001:db8:0:0::1]:2222", ("2001:db8::1", 2222)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, Any]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("False", False),
        ("42", 42),
        ("-3", -3),
        ("0.9", "0.9"),
        ("3.10", "3.10"),
        ("007", "007"),
        ("yes", "yes"),
    ],
)
def test_extra_column_values_are_typed_conservatively(text: str, expected: Any) -> None:
    assert scalar(text) == expected and type(scalar(text)) is type(expected)


# --- Each kind of bad line ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # Duplicate hosts, also when spelled differently.
        ("gpu-01\n# x\ngpu-01\n", 3, "duplicate host 'gpu-01', already on line 1"),
        ("GPU-01\ngpu-01:2222\n", 2, "duplicate host 'gpu-01', already on line 1"),
        ("2001:db8::1\n[2001:db8:0::1]:22\n", 2, "duplicate host '2001:db8::1', already on line 1"),
        # Malformed names and addresses.
        ("gpu_01\n", 1, "'gpu_01' is not a valid host name"),
        ("-gpu01\n", 1, "'-gpu01' is not a valid host name"),
        ("gpu..01\n", 1, "'gpu..01' is not a valid host name"),
        ("host.123\n", 1, "its last label is all digits"),
        ("a" * 64 + ".example\n", 1, "is not a valid host name"),
        ("10.0.0.300\n", 1, "'10.0.0.300' is not a valid IPv4 address"),
        ("10.0.0\n", 1, "'10.0.0' is not a valid IPv4 address"),
        ("2001:db8::zz\n", 1, "'2001:db8::zz' is not an IPv6 address"),
        ("[gpu-01]:22\n", 1, "'gpu-01' in brackets is not an IPv6 address"),
        ("[2001:db8::1]22\n", 1, "is not [IPv6 address] or [IPv6 address]:port"),
        # Bad SSH ports.
        ("gpu-01:0\n", 1, "port '0' is not a number from 1 to 65535"),
        ("gpu-01:65536\n", 1, "port '65536' is not a number from 1 to 65535"),
        ("gpu-01:ssh\n", 1, "port 'ssh' is not a number from 1 to 65535"),
        ("gpu-01:\n", 1, "port '' is not a number from 1 to 65535"),
        # More than one field on a plain line.
        ("gpu-01 gpu-02\n", 1, "expected one host per line, found 'gpu-01 gpu-02'"),
        ("gpu-01,h100\n", 1, "expected one host per line"),
    ],
)
def test_bad_plain_lines(text: str, line: int, fragment: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0][0] == line
    assert fragment in found[0][1]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("host,gpu,model\ngpu-01,h100,m\n", 1, "unknown column 'gpu'"),
        ("host,vllm_\ngpu-01,1\n", 1, "unknown column 'vllm_'"),
        ("host,vllm_Port\ngpu-01,1\n", 1, "unknown column 'vllm_Port'"),
        ("host,extra_var\ngpu-01,1\n", 1, "unknown column 'extra_var'"),
        ("host,model,vllm_model\ngpu-01,a,b\n", 1, "columns 'model' and 'vllm_model' both set vllm_model"),
        ("host,group,group\ngpu-01,a,b\n", 1, "columns 'group' and 'group' both set group"),
        ("Host,group\ngpu-01,a\n", 1, "the first column must be 'host' in lower case"),
        ("host,port\ngpu-01,80000\n", 2, "column port: port '80000' is not a number from 1 to 65535"),
        ("host,ansible_port\ngpu-01,x\n", 2, "column ansible_port: port 'x' is not a number"),
        ("host,ansible_port\ngpu-01:22,22\n", 2, "the SSH port is given twice"),
        ("host,group\ngpu-01,h100-rack\n", 2, "column group: 'h100-rack' is not a valid group name"),
        ("host,group\ngpu-01,all\n", 2, "column group: 'all' is a group Ansible reserves"),
        ("host,ansible_host\ngpu-01,10.0.0.256\n", 2, "column ansible_host: '10.0.0.256' is not a valid IPv4"),
        ("host,group,model\ngpu-01,h100\n", 2, "expected 3 columns as in the header (line 1), found 2"),
        ("host,group\ngpu-01,a,b\n", 2, "expected 2 columns as in the header (line 1), found 3"),
        ("host,group\n,h100\n", 2, "the host is empty"),
        ("host,group\ngpu-01,a\ngpu-01,b\n", 3, "duplicate host 'gpu-01', already on line 2"),
    ],
)
def test_bad_csv_lines(text: str, line: int, fragment: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0][0] == line
    assert fragment in found[0][1]


def test_csv_file_without_header_is_refused() -> None:
    text = (DATA / "no-header.csv").read_text()
    assert problems(text, require_header=True) == [
        (1, "a CSV host list needs a header line starting with 'host', found 'gpu-01.example.internal,h100,H100-80GB'")
    ]


def test_every_problem_is_reported_at_once_with_file_and_lines() -> None:
    path = DATA / "many-problems.csv"
    with pytest.raises(HostlistError) as caught:
        parse_hostlist(path.read_text(), source=str(path), require_header=True)
    assert [problem.line for problem in caught.value.problems] == [4, 5, 6, 7]
    message = str(caught.value)
    assert message.startswith(f"{path}: 4 problems in the host list:\n")
    assert "line 4: 'gpu_02.example.internal' is not a valid host name" in message
    assert "line 5: column port: port '80000' is not a number from 1 to 65535" in message
    assert "line 6: duplicate host 'gpu-01.example.internal', already on line 3" in message
    assert "line 7: expected 4 columns as in the header (line 2), found 2" in message


# --- The inventory plugin, through ansible-inventory ---------------------------


def ansible_inventory(source: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ansible-inventory --list on a source, with the repo as collection gpufleet.vllm."""
    command = Path(sys.executable).with_name("ansible-inventory")
    executable = str(command) if command.exists() else shutil.which("ansible-inventory")
    assert executable, "ansible-inventory is not installed next to this Python or on PATH"
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    env.update(extra_env or {})
    return subprocess.run(
        [executable, "-i", str(source), "--list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def plain(value: Any) -> Any:
    """Drop ansible-inventory's unsafe-text wrappers ({"__ansible_unsafe": "..."})."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def test_ansible_inventory_reads_the_example() -> None:
    result = ansible_inventory(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    inventory = plain(json.loads(result.stdout))

    assert inventory["all"]["children"] == ["ungrouped", "gpu_hosts"]
    assert sorted(inventory["gpu_hosts"]["children"]) == ["h100", "l40s"]
    assert inventory["gpu_hosts"]["hosts"] == [
        "gpu-node-01.example.internal",
        "gpu-node-02.example.internal",
        "10.20.0.15",
        "2001:db8:20::16",
    ]
    assert inventory["h100"]["hosts"] == ["gpu-node-01.example.internal", "gpu-node-02.example.internal"]
    assert inventory["l40s"]["hosts"] == ["10.20.0.15", "2001:db8:20::16"]

    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["gpu-node-02.example.internal"] == {
        "ansible_port": 2222,
        "ansible_user": "ubuntu",  # from group_vars/gpu_hosts.yml next to the config
        "gpufleet_gpu_type": "H100-80GB",
        "vllm_model": "Qwen/Qwen2.5-32B-Instruct",
        "vllm_port": 8000,
        "vllm_tensor_parallel_size": 2,
    }
    # A CSV cell beats group_vars; an empty one leaves group_vars in charge.
    assert hostvars["10.20.0.15"]["vllm_port"] == 8001
    assert hostvars["2001:db8:20::16"]["vllm_model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert hostvars["2001:db8:20::16"]["vllm_port"] == 8000
    assert "vllm_tensor_parallel_size" not in hostvars["gpu-node-01.example.internal"]


def test_ansible_inventory_default_group_and_keyed_groups(tmp_path: Path) -> None:
    (tmp_path / "fleet.hosts").write_text("gpu-01\n[2001:db8::9]:2200\n")
    config = tmp_path / "lab.hostlist.yaml"
    config.write_text(
        "plugin: gpufleet.vllm.hostlist\n"
        "path: fleet.hosts\n"
        "default_group: lab_gpus\n"
        "compose:\n  gpufleet_site: \"'lab'\"\n"
        "keyed_groups:\n  - key: gpufleet_site\n    prefix: site\n"
    )
    result = ansible_inventory(config)
    assert result.returncode == 0, result.stderr
    inventory = plain(json.loads(result.stdout))
    assert inventory["lab_gpus"]["hosts"] == ["gpu-01", "2001:db8::9"]
    assert inventory["site_lab"]["hosts"] == ["gpu-01", "2001:db8::9"]
    assert inventory["_meta"]["hostvars"]["2001:db8::9"] == {"ansible_port": 2200, "gpufleet_site": "lab"}


def test_ansible_inventory_reports_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "fleet.csv").write_text("host,gpu,port\ngpu-01,h100,8000\n")
    (tmp_path / "hosts.txt").write_text("gpu-01\ngpu-01\n10.0.0.300:22\n")
    for name, expected in (
        ("fleet.csv", ["line 1: unknown column 'gpu'"]),
        (
            "hosts.txt",
            ["line 2: duplicate host 'gpu-01', already on line 1", "line 3: '10.0.0.300' is not a valid IPv4"],
        ),
    ):
        config = tmp_path / f"{name}.hostlist.yml"
        config.write_text(f"plugin: gpufleet.vllm.hostlist\npath: {name}\n")
        result = ansible_inventory(config, {"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
        assert result.returncode != 0, result.stdout
        output = " ".join(result.stderr.split())
        assert str(tmp_path / name) in output
        for fragment in expected:
            assert fragment in output, result.stderr


def test_configs_with_other_names_are_left_to_other_plugins(tmp_path: Path) -> None:
    from ansible_collections.gpufleet.vllm.plugins.inventory.hostlist import InventoryModule

    for name, claimed in (
        ("gpufleet.hostlist.yml", True),
        ("hostlist.yaml", True),
        ("hosts.yml", False),
        ("fleet.csv", False),
    ):
        path = tmp_path / name
        path.write_text("plugin: gpufleet.vllm.hostlist\npath: x\n")
        assert InventoryModule().verify_file(str(path)) is claimed, name


# --- Host lists as ops hand them over (issue #12, item 4) ----------------------


def read_list(path: Path) -> list[HostEntry]:
    """Read a file from disk the way the inventory plugin does: bytes, decoded, parsed."""
    text = decode_hostlist(path.read_bytes(), source=str(path))
    return parse_hostlist(text, source=str(path), require_header=path.name.endswith(".csv"))


def list_error(path: Path) -> str:
    with pytest.raises(HostlistError) as caught:
        read_list(path)
    return str(caught.value)


# What Excel writes for "Save As > CSV UTF-8 (Comma delimited)": a byte order mark,
# CRLF line ends, and quotes only around cells holding a comma or a quote.
EXCEL_CSV_UTF8 = (
    b"\xef\xbb\xbfhost,group,gpu_type,model,port,vllm_served_model_name\r\n"
    b"gpu-node-01.example.internal,h100,H100-80GB,Qwen/Qwen2.5-7B-Instruct,8000,qwen-7b\r\n"
    b'gpu-node-02.example.internal:2222,h100,H100-80GB,"org/model,v2",8001,"team ""a"" #1"\r\n'
    b"10.20.0.15,l40s,L40S,,,\r\n"
)


def test_excel_csv_utf8_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    path.write_bytes(EXCEL_CSV_UTF8)
    assert [asdict(entry) for entry in read_list(path)] == [
        {
            "name": "gpu-node-01.example.internal",
            "line": 2,
            "group": "h100",
            "variables": {
                "gpufleet_gpu_type": "H100-80GB",
                "vllm_model": "Qwen/Qwen2.5-7B-Instruct",
                "vllm_port": 8000,
                "vllm_served_model_name": "qwen-7b",
            },
        },
        {
            "name": "gpu-node-02.example.internal",
            "line": 3,
            "group": "h100",
            "variables": {
                "gpufleet_gpu_type": "H100-80GB",
                "vllm_model": "org/model,v2",
                "vllm_port": 8001,
                "vllm_served_model_name": 'team "a" #1',
                "ansible_port": 2222,
            },
        },
        {"name": "10.20.0.15", "line": 4, "group": "l40s", "variables": {"gpufleet_gpu_type": "L40S"}},
    ]


def test_bom_is_stripped_from_text_and_from_a_plain_list(tmp_path: Path) -> None:
    # The header is still recognised when the BOM comes with already-decoded text.
    entries = parse_hostlist("\ufeffhost,group\r\ngpu-01,h100\r\n", require_header=True)
    assert [(entry.name, entry.group) for entry in entries] == [("gpu-01", "h100")]
    path = tmp_path / "hosts.txt"
    path.write_bytes(b"\xef\xbb\xbfgpu-01\r\n# spare\r\ngpu-02:2222\r\n")
    assert [(entry.name, entry.line, entry.variables) for entry in read_list(path)] == [
        ("gpu-01", 1, {}),
        ("gpu-02", 3, {"ansible_port": 2222}),
    ]


@pytest.mark.parametrize(
    ("row", "model"),
    [
        ('gpu-01,"Qwen/Qwen2.5-7B #exp"', "Qwen/Qwen2.5-7B #exp"),
        ('gpu-01, "a,b # c"   # a real comment', "a,b # c"),  # space before the quote, as people type it
        ('gpu-01,"# all of it"', "# all of it"),
        ('gpu-01,"say ""#1"""', 'say "#1"'),
        ("gpu-01,ops#2", "ops#2"),  # no space before '#': a value, as before
        ("gpu-01,plain  # trailing comment", "plain"),
    ],
)
def test_hash_inside_a_quoted_field_is_a_value(row: str, model: str) -> None:
    entries = parse_hostlist(f"host,model\n{row}\n")
    assert entries[0].variables == {"vllm_model": model}


def test_unquoted_space_hash_in_a_cell_explains_the_comment_rule() -> None:
    # Excel writes 'H100 #2' without quotes; the comment rule then cuts the row short.
    found = problems("host,gpu_type,port\ngpu-01,H100 #2,8000\n")
    assert found == [
        (
            2,
            "expected 3 columns as in the header (line 1), found 2; a '#' after a space starts a comment. "
            "Fix: quote a value that holds ' #' (\"H100 #2\")",
        )
    ]


def test_unterminated_quote_names_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(
        "host,model,port\n"
        "gpu-01,Qwen/Qwen2.5-7B-Instruct,8000\n"
        'gpu-02,"Qwen/Qwen2.5-7B-Instruct,8000   # forgot the closing quote\n'
        "gpu-03,Qwen/Qwen2.5-7B-Instruct,8000\n"
    )
    message = list_error(path)
    assert message == (
        f"{path}: 1 problem in the host list:\n"
        "  line 3: unterminated quote: the field starting '\"Qwen/Qwen2.5-7B-Instruct,8000...' opens with '\"' "
        "but the line ends before a closing '\"'. Fix: close the quote on the same line (a value cannot span "
        "lines; a '\"' inside a quoted value is written '\"\"')"
    )


def test_unterminated_quote_is_reported_with_the_other_problems() -> None:
    found = problems('host,model\ngpu_01,m\ngpu-02,"m\ngpu-03,m\n')
    assert [line for line, _ in found] == [2, 3]
    assert found[1][1].startswith("unterminated quote: the field starting '\"m'")


def test_unterminated_quote_on_the_first_line_stops_there() -> None:
    # Without the first line there is no telling header from host, so the rows are not guessed at.
    found = problems('host,"model\ngpu-01,m\ngpu-02,"x\n')
    assert [line for line, _ in found] == [1, 3]
    assert all(message.startswith("unterminated quote") for _, message in found)


def test_a_cell_spanning_lines_is_an_unterminated_quote() -> None:
    # Excel quotes a cell with a line break (Alt+Enter) and writes the break as is.
    found = problems('host,model\ngpu-01,"first\nsecond",8000\n')
    assert found[0][0] == 2 and found[0][1].startswith("unterminated quote")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # A lone "host" first line is the header; a host of that name goes below it ...
        ("host\nhost\ngpu-01\n", ["host", "gpu-01"]),
        ("host,group\nhost,h100\n", ["host"]),
        # ... or is written so it cannot be the header.
        ("host.example.internal\ngpu-01\n", ["host.example.internal", "gpu-01"]),
        ("host:22\ngpu-01\n", ["host", "gpu-01"]),
        ("hosts\nhost-01\n", ["hosts", "host-01"]),
        ("localhost\n", ["localhost"]),
        # Hosts named like the other columns are hosts: only "host" can open a header.
        ("port\nmodel\ngroup\n", ["port", "model", "group"]),
        # Comments, a BOM, CRLF and quotes around the header do not hide it.
        ("\ufeff# fleet\r\nhost # header\r\ngpu-01\r\n", ["gpu-01"]),
        ('"host","group"\ngpu-01,h100\n', ["gpu-01"]),
    ],
)
def test_first_line_header_or_host(text: str, names: list[str]) -> None:
    assert [entry.name for entry in parse_hostlist(text)] == names


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # A capitalised header is still read as one, so the error says what is wrong with it.
        ("HOST\ngpu-01\n", "line 1: the first column must be 'host' in lower case, found 'HOST'"),
        ("Host,Group\ngpu-01,h100\n", "line 1: the first column must be 'host' in lower case, found 'Host'"),
        # A first line with commas cannot be a host, so it is a header and each unknown column is named.
        ("host,gpu-02\n", "line 1: unknown column 'gpu-02'"),
    ],
)
def test_first_line_that_is_a_broken_header(text: str, fragment: str) -> None:
    with pytest.raises(HostlistError) as caught:
        parse_hostlist(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "line 1: no hosts: the file is empty. Fix: add the hosts"),
        (b"\xef\xbb\xbf", "line 1: no hosts: the file is empty. Fix: add the hosts"),
        (b"\r\n  \r\n", "line 1: no hosts: lines 1-2 hold only comments and blank lines. Fix: add the hosts"),
        (b"# TODO hand-over\n", "line 1: no hosts: its only line is a comment or blank. Fix:"),
        (b"\xef\xbb\xbfhost,group,gpu_type\r\n", "line 1: no hosts: the CSV header is the only line. Fix:"),
        (b"host\n", "line 1: no hosts: the CSV header is the only line (a lone 'host' first line is the CSV header;"),
    ],
)
def test_lists_without_hosts_are_an_error(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "hosts.txt"
    path.write_bytes(content)
    message = list_error(path)
    assert message.startswith(f"{path}: 1 problem in the host list:\n  {expected}"), message
    assert "or point path: in the inventory config at the list that has them" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "host,gpu_type\r\ngpu-01,H100\r\ngpu-02,Café\r\n".encode("cp1252"),
            "line 3: byte b'\\xe9' is not UTF-8 (the file is probably in a legacy encoding such as Windows-1252). "
            "Fix: save it as 'CSV UTF-8 (comma delimited)' or UTF-8 text",
        ),
        (
            "host\r\ngpu-01\r\n".encode("utf-16"),
            "line 1: the file is UTF-16 (Excel's 'Unicode Text'), not UTF-8. Fix: save it as",
        ),
    ],
)
def test_files_that_are_not_utf8(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "hosts.csv"
    path.write_bytes(content)
    assert list_error(path).startswith(f"{path}: 1 problem in the host list:\n  {expected}")


def write_config(tmp_path: Path, list_name: str) -> Path:
    config = tmp_path / "gpufleet.hostlist.yml"
    config.write_text(f"plugin: gpufleet.vllm.hostlist\npath: {list_name}\n")
    return config


def test_ansible_inventory_reads_an_excel_csv(tmp_path: Path) -> None:
    (tmp_path / "hosts.csv").write_bytes(EXCEL_CSV_UTF8)
    result = ansible_inventory(write_config(tmp_path, "hosts.csv"))
    assert result.returncode == 0, result.stderr
    inventory = plain(json.loads(result.stdout))
    assert inventory["gpu_hosts"]["children"] == ["h100", "l40s"]
    assert inventory["h100"]["hosts"] == ["gpu-node-01.example.internal", "gpu-node-02.example.internal"]
    assert inventory["_meta"]["hostvars"]["gpu-node-02.example.internal"]["vllm_served_model_name"] == 'team "a" #1'


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("hosts.txt", b"# hosts follow next week\n\n", "line 1: no hosts: lines 1-2 hold only comments"),
        ("hosts.csv", b"\xef\xbb\xbfhost,group\r\n", "line 1: no hosts: the CSV header is the only line"),
        ("hosts.csv", b'host,model\ngpu-01,"Qwen\n', "line 2: unterminated quote"),
    ],
)
def test_ansible_inventory_fails_on_a_list_without_hosts(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    # With the collection's ansible.cfg (any_unparsed_is_failed) and nothing added.
    (tmp_path / name).write_bytes(content)
    result = ansible_inventory(write_config(tmp_path, name))
    assert result.returncode != 0, result.stdout
    output = " ".join(result.stderr.split())
    assert str(tmp_path / name) in output, result.stderr
    assert expected in output, result.stderr
    assert "Fix:" in output, result.stderr


def test_playbook_on_an_empty_list_fails_before_any_task(tmp_path: Path) -> None:
    (tmp_path / "hosts.txt").write_text("# nothing yet\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- name: Touch a marker on every GPU host\n"
        "  hosts: gpu_hosts\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Write the marker\n"
        f"      ansible.builtin.file: {{path: '{tmp_path}/ran', state: touch}}\n"
        "      delegate_to: localhost\n"
    )
    command = Path(sys.executable).with_name("ansible-playbook")
    env = dict(
        os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")
    )
    result = subprocess.run(
        [
            str(command) if command.exists() else "ansible-playbook",
            "-i",
            str(write_config(tmp_path, "hosts.txt")),
            str(playbook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "no hosts: its only line is a comment or blank. Fix:" in " ".join((result.stdout + result.stderr).split())
    assert not (tmp_path / "ran").exists()
