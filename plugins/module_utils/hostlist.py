"""Parse the host lists ops hand over: one host per line, or CSV with a header.

Pure Python with no Ansible imports, so the rules can be tested on their own;
plugins/inventory/hostlist.py turns the result into inventory. docs/hostlist.md
describes the format for users.

Plain list::

    # comment
    gpu-node-01.example.internal
    gpu-node-02:2222            # SSH port
    10.0.0.15
    2001:db8::15
    [2001:db8::16]:2222

CSV (the first non-comment line is a header whose first field is ``host``)::

    host,group,gpu_type,model,port,vllm_max_model_len
    gpu-node-01,h100,H100-80GB,Qwen/Qwen2.5-7B-Instruct,8000,8192

Files as ops hand them over: a UTF-8 byte order mark (Excel's "CSV UTF-8")
and CRLF line ends are accepted, ``#`` inside a quoted field is a value, and
an unterminated quote or a list without hosts is an error.

Every problem in a file is reported at once, each with its line number.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Collection, Optional, Union

# Columns with a meaning of their own, and the host variable each one sets.
KNOWN_COLUMNS: dict[str, Optional[str]] = {
    "host": None,
    "group": None,
    "gpu_type": "gpufleet_gpu_type",
    "model": "vllm_model",
    "port": "vllm_port",
}
# Any other column is a host variable named after it, if it carries the prefix
# of a gpufleet.vllm role or Ansible's own; anything else is most likely a typo.
VARIABLE_PREFIXES: tuple[str, ...] = (
    "ansible_",
    "gpufleet_",
    "vllm_",
    "conda_",
    "cuda_",
    "nvidia_driver_",
)
# Group names Ansible reserves.
RESERVED_GROUPS: frozenset[str] = frozenset({"all", "ungrouped"})

_VARIABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_BOM = "\ufeff"
# How the CSV module reads a row; _scan_line follows the same quoting rules.
# skipinitialspace lets 'gpu-01, "a,b"' quote its second field as meant.
_CSV_FORMAT = {"skipinitialspace": True}
_FIX_NO_HOSTS = (
    "Fix: add the hosts, one per line (or CSV rows under a 'host,...' header line), "
    "or point path: in the inventory config at the list that has them"
)

Scalar = Union[str, int, bool]


@dataclass(frozen=True)
class Problem:
    """One bad line: where it is and what is wrong with it."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class HostlistError(ValueError):
    """A host list with one or more bad lines."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: p.line)
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''} in the host list:\n{lines}")


@dataclass
class HostEntry:
    """One host as the file describes it."""

    name: str
    line: int
    group: Optional[str] = None
    variables: dict[str, Scalar] = field(default_factory=dict)


def parse_address(text: str) -> tuple[str, Optional[int]]:
    """Split ``host``, ``host:port``, ``IPv6`` or ``[IPv6]:port`` into name and SSH port.

    The name comes back canonical for addresses (``2001:db8:0::1`` becomes
    ``2001:db8::1``) and as written for host names. Raises ValueError.
    """
    port_text: Optional[str] = None
    if text.startswith("["):
        match = re.match(r"^\[([^\]]*)\](?::(.*))?$", text)
        if not match:
            raise ValueError(f"{text!r} is not [IPv6 address] or [IPv6 address]:port")
        host, port_text = match.group(1), match.group(2)
        if not _is_ipv6(host):
            raise ValueError(f"{host!r} in brackets is not an IPv6 address")
    elif text.count(":") > 1:
        # Several colons can only be an IPv6 address; a port needs brackets.
        host = text
        if not _is_ipv6(host):
            raise ValueError(f"{text!r} is not an IPv6 address (write [address]:port for a port)")
    elif ":" in text:
        host, port_text = text.split(":", 1)
    else:
        host = text

    port = None if port_text is None else parse_port(port_text)
    return canonical_host(host), port


def canonical_host(host: str) -> str:
    """Return an address in canonical form or a valid host name as written. Raises ValueError."""
    if _is_ipv6(host):
        return str(ipaddress.IPv6Address(host))
    if _DOTTED_NUMBERS.match(host):
        # Digits and dots are meant as IPv4, so 10.0.0.300 is an error, not a name.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv4 address") from None
    if not host:
        raise ValueError("the host is empty")
    if len(host) > 253:
        raise ValueError(f"host name {host[:40]!r}... is longer than 253 characters")
    labels = host.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{host!r} is not a valid host name (letters, digits and '-' in dot-separated labels "
            "of at most 63 characters, no '-' at either end)"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{host!r} is not a valid host name (its last label is all digits)")
    return host


def parse_port(text: str) -> int:
    """Return a TCP port number 1-65535. Raises ValueError."""
    text = text.strip()
    if not _PORT.match(text) or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def column_variable(column: str) -> str:
    """Return the host variable a header column sets. Raises ValueError for unknown columns."""
    if column in KNOWN_COLUMNS:
        return KNOWN_COLUMNS[column] or column
    if _VARIABLE_NAME.match(column) and column.startswith(VARIABLE_PREFIXES) and column not in VARIABLE_PREFIXES:
        return column
    raise ValueError(
        f"unknown column {column!r}: use host, group, gpu_type, model, port, or a variable name "
        f"(lower case) starting with {', '.join(VARIABLE_PREFIXES)}"
    )


def scalar(text: str) -> Scalar:
    """Type an extra column's value: true/false and whole numbers; everything else stays text.

    Decimals stay strings on purpose: "3.10" must not become 3.1.
    """
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INTEGER.match(text):
        return int(text)
    return text


def decode_hostlist(data: bytes, source: str = "<hostlist>") -> str:
    """Decode a host list file's bytes as UTF-8, with or without a byte order mark.

    Raises HostlistError naming the line of the first byte that is not UTF-8.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise HostlistError(
            source,
            [
                Problem(
                    1,
                    "the file is UTF-16 (Excel's 'Unicode Text'), not UTF-8. "
                    "Fix: save it as 'CSV UTF-8 (comma delimited)' or plain UTF-8 text",
                )
            ],
        )
    data = data.removeprefix(_BOM.encode())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HostlistError(
            source,
            [
                Problem(
                    line,
                    f"byte {data[exc.start:exc.start + 1]!r} is not UTF-8 (the file is probably in a legacy "
                    "encoding such as Windows-1252). Fix: save it as 'CSV UTF-8 (comma delimited)' or UTF-8 text",
                )
            ],
        ) from None


def parse_hostlist(text: str, source: str = "<hostlist>", require_header: bool = False) -> list[HostEntry]:
    """Parse a host list. Raises HostlistError listing every bad line.

    ``require_header`` makes a file without a CSV header an error (for .csv files).
    A list without any host is an error too: a play on it would match nothing and
    still succeed.
    """
    # Excel's "CSV UTF-8" starts the file with a byte order mark; it is not part of the header.
    raw_lines = text.removeprefix(_BOM).splitlines()
    problems: list[Problem] = []
    lines: list[tuple[int, str]] = []
    commented: set[int] = set()
    for number, raw in enumerate(raw_lines, start=1):
        line, open_quote = _scan_line(raw)
        if len(line) < len(raw.strip()):
            commented.add(number)
        if open_quote is not None:
            problems.append(Problem(number, _unterminated_quote(raw, open_quote)))
        elif line:
            lines.append((number, line))
    if problems and (not lines or problems[0].line < lines[0][0]):
        # Without the first line there is no telling header from host; report the quotes only.
        raise HostlistError(source, problems)
    if not lines:
        if not raw_lines:
            what = "the file is empty"
        elif len(raw_lines) == 1:
            what = "its only line is a comment or blank"
        else:
            what = f"lines 1-{len(raw_lines)} hold only comments and blank lines"
        raise HostlistError(source, [Problem(1, f"no hosts: {what}. {_FIX_NO_HOSTS}")])

    first_number, first_line = lines[0]
    header_cells = _cells(first_line)
    if is_header(header_cells):
        entries = _parse_csv(first_number, header_cells, lines[1:], problems, commented)
    elif require_header:
        problems.append(
            Problem(first_number, f"a CSV host list needs a header line starting with 'host', found {first_line!r}")
        )
        entries = []
    else:
        entries = _parse_plain(lines, problems)

    _check_duplicates(entries, problems)
    if not entries and not problems:
        problems.append(Problem(first_number, _header_without_hosts(header_cells)))
    if problems:
        raise HostlistError(source, problems)
    return entries


def is_header(cells: list[str]) -> bool:
    """Whether a list's first line is a CSV header: its first field is ``host``, in any case.

    Only that exact field counts, so hosts such as ``host.example.internal``,
    ``host:2222``, ``hosts`` or ``port`` are hosts. A line with more fields
    cannot be a host (hosts have no commas), so it is read as a header and
    each unknown column reported. The one line both readings fit, a lone
    ``host``, is a header; a host of that name goes below a header or is
    written as ``host.<domain>``.
    """
    return cells[0].lower() == "host"


def _header_without_hosts(header: list[str]) -> str:
    hint = ""
    if len(header) == 1:
        hint = (
            " (a lone 'host' first line is the CSV header; to list a host named host, put it below "
            "that header or write its full name, e.g. host.example.internal)"
        )
    return f"no hosts: the CSV header is the only line{hint}. {_FIX_NO_HOSTS}"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in next(csv.reader([line], **_CSV_FORMAT))]


def _scan_line(raw: str) -> tuple[str, Optional[int]]:
    """Strip a line's comment; return the rest and where an unterminated quote opens, if one does.

    A comment runs from "#" to the end of the line when the "#" starts the line
    or follows whitespace and is outside quotes, so "#" inside a value, quoted
    or not, is kept. Quotes follow the csv module: a '"' opens a quoted field
    only at the start of a field (after spaces), and '""' inside one is a '"'.
    """
    field_start = True
    quote_at: Optional[int] = None
    index = 0
    while index < len(raw):
        char = raw[index]
        if quote_at is not None:
            if char == '"':
                if raw.startswith('""', index):
                    index += 1
                else:
                    quote_at = None
        elif char == "#" and (index == 0 or raw[index - 1].isspace()):
            return raw[:index].strip(), None
        elif char == ",":
            field_start = True
        elif char == " " and field_start:
            pass
        elif char == '"' and field_start:
            quote_at = index
            field_start = False
        else:
            field_start = False
        index += 1
    return raw.strip(), quote_at


def _unterminated_quote(raw: str, quote_at: int) -> str:
    opened = raw[quote_at : quote_at + 30]
    more = "..." if len(raw) > quote_at + 30 else ""
    return (
        f"unterminated quote: the field starting {opened + more!r} opens with '\"' but the line ends "
        "before a closing '\"'. Fix: close the quote on the same line (a value cannot span lines; "
        "a '\"' inside a quoted value is written '\"\"')"
    )


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _parse_plain(lines: list[tuple[int, str]], problems: list[Problem]) -> list[HostEntry]:
    entries: list[HostEntry] = []
    for number, line in lines:
        fields = line.split()
        if len(fields) != 1 or "," in line:
            problems.append(
                Problem(
                    number,
                    f"expected one host per line, found {line!r}; for more columns make the file CSV "
                    "with a header line such as 'host,group,gpu_type,model,port'",
                )
            )
            continue
        try:
            name, ssh_port = parse_address(fields[0])
        except ValueError as exc:
            problems.append(Problem(number, str(exc)))
            continue
        entry = HostEntry(name=name, line=number)
        if ssh_port is not None:
            entry.variables["ansible_port"] = ssh_port
        entries.append(entry)
    return entries


def _parse_csv(
    header_line: int,
    header: list[str],
    rows: list[tuple[int, str]],
    problems: list[Problem],
    commented: Collection[int] = (),
) -> list[HostEntry]:
    header_ok = True
    seen: dict[str, str] = {}
    for index, column in enumerate(header):
        if index == 0 and column != "host":
            problems.append(Problem(header_line, f"the first column must be 'host' in lower case, found {column!r}"))
            header_ok = False
            continue
        try:
            variable = column_variable(column)
        except ValueError as exc:
            problems.append(Problem(header_line, str(exc)))
            header_ok = False
            continue
        if variable in seen:
            problems.append(
                Problem(header_line, f"columns {seen[variable]!r} and {column!r} both set {variable}; keep one")
            )
            header_ok = False
        seen[variable] = column
    if not header_ok:
        # Rows cannot be read against a broken header; report the header only.
        return []

    entries: list[HostEntry] = []
    for number, line in rows:
        cells = _cells(line)
        if len(cells) != len(header):
            hint = ""
            if number in commented and len(cells) < len(header):
                # Excel leaves "H100 #2" unquoted, and " #" starts a comment.
                hint = "; a '#' after a space starts a comment. Fix: quote a value that holds ' #' (\"H100 #2\")"
            problems.append(
                Problem(
                    number,
                    f"expected {len(header)} columns as in the header (line {header_line}), found {len(cells)}{hint}",
                )
            )
            continue
        entry = _parse_row(number, dict(zip(header, cells, strict=True)), problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_row(number: int, row: dict[str, str], problems: list[Problem]) -> Optional[HostEntry]:
    before = len(problems)
    try:
        name, ssh_port = parse_address(row["host"])
    except ValueError as exc:
        problems.append(Problem(number, str(exc)))
        name, ssh_port = "", None
    entry = HostEntry(name=name, line=number)
    for column, value in row.items():
        if column == "host" or value == "":
            continue  # An empty cell leaves the variable to group_vars.
        try:
            if column == "group":
                entry.group = check_group_name(value)
            elif column in ("port", "ansible_port"):
                entry.variables[column_variable(column)] = parse_port(value)
            elif column == "ansible_host":
                entry.variables[column] = canonical_host(value)
            elif column in KNOWN_COLUMNS:
                entry.variables[column_variable(column)] = value
            else:
                entry.variables[column] = scalar(value)
        except ValueError as exc:
            problems.append(Problem(number, f"column {column}: {exc}"))
    if ssh_port is not None:
        if "ansible_port" in entry.variables:
            problems.append(Problem(number, "the SSH port is given twice, as host:port and in ansible_port; keep one"))
        entry.variables["ansible_port"] = ssh_port
    return entry if len(problems) == before else None


def check_group_name(value: str) -> str:
    """Return a group name Ansible accepts without rewriting it. Raises ValueError."""
    if not _GROUP_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid group name (letters, digits and '_', not starting with a digit)")
    if value in RESERVED_GROUPS:
        raise ValueError(f"{value!r} is a group Ansible reserves")
    return value


def _check_duplicates(entries: list[HostEntry], problems: list[Problem]) -> None:
    first_seen: dict[str, HostEntry] = {}
    for entry in entries:
        # Host names are case-insensitive; addresses are already canonical.
        key = entry.name.lower()
        if key in first_seen:
            problems.append(
                Problem(entry.line, f"duplicate host {entry.name!r}, already on line {first_seen[key].line}")
            )
        else:
            first_seen[key] = entry
