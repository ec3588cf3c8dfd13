"""YAML and JSON: Kubernetes manifests, docker-compose files, Ansible/Salt variables, JSON patches.

The parser composes the YAML node graph (never constructs objects, so no tags run and line
numbers survive) and looks for sysctls where each tool takes them:

- Kubernetes pod specs, bare or inside a workload's pod template (Deployment, StatefulSet,
  DaemonSet, Job, CronJob, ...; any mapping with `containers`): `securityContext.sysctls`
  first, then `sysctl -w` in the command/args of initContainers and containers, in that order.
  `sysctls` under a *container* securityContext is a placement problem: it never applies.
- docker-compose services: `sysctls:` as a list of `k=v` or a mapping; one unit per service.
- Salt states (salt/states/sysctl.py `present(name, value, config=None)`): `ID: {sysctl.present: [{value: V}]}`
  (the state ID is the key) or with `- name: KEY`, and the `sysctl: [present, {name: ..}, {value: ..}]` form.
  A state whose name or value is not a literal is a gap ("not read: Salt sysctl.present ..."), never a pass.
- Talos machine configuration: `machine.sysctls` (a map of key -> string, v1alpha1 MachineSysctls) and the
  `SysctlConfig` document's `params` (siderolabs/talos pkg/machinery/config/types/runtime/sysctl.go).
- Anything else (Ansible vars, Salt pillars, CNI `tuning` plugin config, kustomize patches):
  mapping entries whose key is a sysctl name, `{name: k, value: v}` items, `sysctls:` lists,
  embedded `sysctl -w` commands, tuned `[sysctl]` text and `*.conf` file bodies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from ..model import Location
from .keys import looks_like_sysctl, normalize_key
from .model import Assignment, ConfigUnit, Problem
from .shell import mentions_sysctl, parse_script, parse_words
from .text import is_tuned, parse_sysctl_conf, parse_tuned

Node = yaml.Node
_POD_LISTS = ("initContainers", "containers", "ephemeralContainers")
_SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"}


class StructuredError(ValueError):
    pass


def _get(node: Node | None, key: str) -> Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _key_node(node: Node | None, key: str) -> Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, _v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k
    return None


def _scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _line(node: Node) -> int:
    return node.start_mark.line + 1


@dataclass
class _Collector:
    text: str
    file: str
    syntax: str
    assignments: list[Assignment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    # -- helpers --------------------------------------------------------------
    def unit(self, name: str, **extra: Any) -> ConfigUnit:
        """What this collector read, as one lint target of its file."""
        return ConfigUnit(
            name=name,
            syntax=self.syntax,
            assignments=self.assignments,
            problems=self.problems,
            files=[self.file],
            notes=self.notes,
            gaps=self.gaps,
            **extra,
        )

    def loc(self, node: Node) -> Location:
        return Location(file=self.file, line=_line(node))

    def add(self, key_node: Node, key: str, value: str | None, syntax: str | None = None) -> None:
        self.assignments.append(
            Assignment(
                key=normalize_key(key),
                value=None if value is None else value.strip(),
                location=self.loc(key_node),
                raw_key=key,
                syntax=syntax or self.syntax,
            )
        )

    def _relocate(self, items: list, node: Node) -> list:
        """Map script-relative lines of text found inside a scalar back to lines of the file."""
        src = self.text[node.start_mark.index : node.end_mark.index]
        cursor, out = 0, []
        for a in items:
            needle = a.raw_key or (a.keys[0] if isinstance(a, Problem) and a.keys else "")
            pos = src.find(needle, cursor) if needle else -1
            if pos >= 0:
                line = node.start_mark.line + 1 + src.count("\n", 0, pos)
                cursor = pos + len(needle)
            else:
                line = _line(node)
            out.append(replace(a, location=Location(file=self.file, line=line)))
        return out

    def script(self, node: Node) -> None:
        """A scalar that may hold shell commands (command strings, Ansible shell tasks)."""
        value = node.value
        if not mentions_sysctl(value):
            return
        a, p = parse_script(value, self.file)
        self.assignments += self._relocate(a, node)
        self.problems += self._relocate(p, node)

    def argv(self, items: list[Node]) -> bool:
        """An exec-form command list: ["sysctl", "-w", "k=v"] or ["sh", "-c", "script"]."""
        words = [_scalar(i) for i in items]
        if not words or any(w is None for w in words):
            return False
        prog = os.path.basename(words[0] or "")
        if prog == "sysctl":
            a, p = parse_words(words, self.loc(items[0]))  # type: ignore[arg-type]
            self.assignments += a
            self.problems += p
            return True
        if prog in _SHELLS and "-c" in words:
            i = words.index("-c")
            if i + 1 < len(items):
                self.script(items[i + 1])
            return True
        return False

    # -- generic walk ---------------------------------------------------------
    def walk(self, node: Node | None) -> None:
        if node is None or id(node) in self.seen:
            return
        self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            self.scalar(node, None)
        elif isinstance(node, yaml.SequenceNode):
            if not self.argv(node.value):
                for item in node.value:
                    self.walk(item)
        elif isinstance(node, yaml.MappingNode):
            name, value = _get(node, "name"), _get(node, "value")
            name_s, value_s = _scalar(name), _scalar(value)
            pair = name is not None and bool(name_s) and value_s is not None and looks_like_sysctl(name_s or "")
            if pair:
                self.add(name, name_s or "", value_s, syntax="yaml name/value")  # type: ignore[arg-type]
            for k, v in node.value:
                ks = _scalar(k)
                if ks is None or (pair and ks in ("name", "value")):
                    continue
                if isinstance(v, yaml.MappingNode) and _salt_args(v) is not None:
                    self.salt_state(k, ks, v)
                elif looks_like_sysctl(ks) and isinstance(v, yaml.ScalarNode):
                    self.add(k, ks, v.value if v.tag != "tag:yaml.org,2002:null" else "")
                elif ks == "sysctls":
                    if id(v) not in self.seen:
                        self.compose_sysctls(v)
                elif isinstance(v, yaml.ScalarNode):
                    self.scalar(v, ks)
                else:
                    self.walk(v)

    def scalar(self, node: yaml.ScalarNode, key: str | None) -> None:
        value = node.value
        if "\n[sysctl]" in "\n" + value and is_tuned(value):
            a, _, notes = parse_tuned(value, self.file, first_line=_line(node) + 1)
            self.assignments += self._relocate(a, node)
            self.notes += notes
        elif key is not None and key.endswith(".conf") and "=" in value and "\n" in value:
            a, _ = parse_sysctl_conf(value, self.file, strict=False)
            self.assignments += self._relocate(a, node)
        elif value.lstrip().startswith("{") and "sysctl" in value:
            self.json_blob(node)
        elif mentions_sysctl(value):
            self.script(node)

    def json_blob(self, node: yaml.ScalarNode) -> None:
        """JSON inside a string, e.g. a CNI config with the `tuning` plugin's `sysctl` map."""
        try:
            data = json.loads(node.value)
        except (ValueError, RecursionError):
            return
        found: list[Assignment] = []

        def visit(obj: object) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if isinstance(k, str) and looks_like_sysctl(k) and isinstance(v, (str, int, float)):
                        found.append(
                            Assignment(
                                key=normalize_key(k), value=str(v), location=self.loc(node), raw_key=k, syntax="json"
                            )
                        )
                    else:
                        visit(v)
            elif isinstance(obj, list):
                for v in obj:
                    visit(v)

        visit(data)
        self.assignments += self._relocate(found, node)

    def salt_state(self, id_node: Node, state_id: str, body: yaml.MappingNode) -> None:
        """`ID: {sysctl.present: [{name: K}, {value: V}, {config: F}]}`; the name defaults to the state ID."""
        self.seen.add(id(body))
        args = _salt_args(body) or []
        given: dict[str, Node] = {}
        for item in args:
            self.seen.add(id(item))
            if isinstance(item, yaml.MappingNode):
                for k, v in item.value:
                    if _scalar(k) is not None:
                        given[_scalar(k) or ""] = v
        name_node = given.get("name")
        name = _scalar(name_node) if name_node is not None else state_id
        value_node = given.get("value")
        value = _scalar(value_node) if value_node is not None else None
        where = f"{self.file}:{_line(id_node)}"
        templated = value is not None and ("{{" in value or "{%" in value)
        if not name or not looks_like_sysctl(name) or value is None or templated:
            if value is None:
                why = "it has no literal `value`"
            elif templated:
                why = f"its value {value[:60]!r} is a template Salt renders at apply time"
            else:
                why = f"its name {str(name)[:60]!r} is not a sysctl name (a template or pillar lookup?)"
            self.gaps.append(f"not read: Salt sysctl.present state {state_id[:80]!r} at {where}: {why}")
            return
        self.add(name_node if name_node is not None else id_node, name, value, syntax="salt sysctl.present")
        config = _scalar(given.get("config"))
        if config:
            self.notes.append(f"{where}: Salt persists {name} to {config[:120]} (sysctl.persist) and applies it")

    def compose_sysctls(self, node: Node) -> None:
        """`sysctls:` as docker-compose writes it (list of k=v, or a mapping), or a k8s name/value list."""
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                ks, vs = _scalar(k), _scalar(v)
                if ks is not None and vs is not None:
                    self.add(k, ks, vs, syntax="sysctls")
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                s = _scalar(item)
                if s is not None and "=" in s:
                    key, _, value = s.partition("=")
                    self.add(item, key.strip(), value, syntax="sysctls")
                else:
                    self.walk(item)

    # -- Kubernetes -------------------------------------------------------------
    def pod(self, spec: Node) -> None:
        self.seen.add(id(spec))
        sysctls = _get(_get(spec, "securityContext"), "sysctls")
        if isinstance(sysctls, yaml.SequenceNode):
            for item in sysctls.value:
                name, value = _get(item, "name"), _get(item, "value")
                if name is not None and _scalar(name) is not None:
                    self.add(
                        name,
                        _scalar(name) or "",
                        _scalar(value) if value is not None else "",
                        syntax="kubernetes securityContext.sysctls",
                    )
        for list_key in _POD_LISTS:
            containers = _get(spec, list_key)
            if not isinstance(containers, yaml.SequenceNode):
                continue
            for c in containers.value:
                cname = _scalar(_get(c, "name")) or "?"
                csc = _get(c, "securityContext")
                bad = _get(csc, "sysctls")
                if bad is not None:
                    keys = tuple(
                        normalize_key(_scalar(_get(i, "name")) or "")
                        for i in getattr(bad, "value", [])
                        if _scalar(_get(i, "name"))
                    )
                    self.problems.append(
                        Problem(
                            "placement",
                            f"`sysctls` is under the securityContext of {list_key[:-1]} {cname!r}; only the pod's "
                            "securityContext (spec.securityContext.sysctls) sets sysctls. The API server rejects the "
                            "unknown field with strict validation or silently drops it, so "
                            + (", ".join(keys) or "these settings")
                            + " never apply",
                            self.loc(_key_node(csc, "sysctls") or bad),
                            keys,
                        )
                    )
                for part in ("command", "args"):
                    v = _get(c, part)
                    if isinstance(v, yaml.SequenceNode):
                        if part == "command" and self._exec_form(v, _get(c, "args")):
                            break
                        for item in v.value:
                            if isinstance(item, yaml.ScalarNode):
                                self.script(item)
                    elif isinstance(v, yaml.ScalarNode):
                        self.script(v)

    def _exec_form(self, command: yaml.SequenceNode, args: Node | None) -> bool:
        items = list(command.value) + (list(args.value) if isinstance(args, yaml.SequenceNode) else [])
        return self.argv(items)


def _salt_args(body: yaml.MappingNode) -> list[Node] | None:
    """The argument list of a Salt `sysctl.present` state body, or None if `body` is not one.

    Salt accepts `sysctl.present: [args]` and `sysctl: [present, args...]` (the function as a bare list item)."""
    present = _get(body, "sysctl.present")
    if isinstance(present, yaml.SequenceNode):
        return list(present.value)
    if present is not None:
        return []  # `sysctl.present:` with no arguments, or a mapping: a state that sets nothing readable
    short = _get(body, "sysctl")
    if isinstance(short, yaml.SequenceNode) and any(_scalar(i) == "present" for i in short.value):
        return [i for i in short.value if not isinstance(i, yaml.ScalarNode)]
    return None


def _talos(doc: Node, c: _Collector) -> bool:
    """Talos v1alpha1 machine configuration (`machine.sysctls`) or a SysctlConfig document (`params`)."""
    kind, api = _scalar(_get(doc, "kind")), _scalar(_get(doc, "apiVersion"))
    if kind == "SysctlConfig" and api == "v1alpha1":
        where, node = "SysctlConfig.params", _get(doc, "params")
    elif _scalar(_get(doc, "version")) == "v1alpha1" and isinstance(_get(doc, "machine"), yaml.MappingNode):
        where, node = "machine.sysctls", _get(_get(doc, "machine"), "sysctls")
    else:
        return False
    if node is None:
        return True
    c.seen.add(id(node))
    if not isinstance(node, yaml.MappingNode):
        c.gaps.append(f"not read: Talos {where} at {c.file}:{_line(node)} is not a mapping of key: value")
        return True
    for k, v in node.value:
        ks, vs = _scalar(k), _scalar(v)
        if ks is not None and vs is not None:
            c.add(k, ks, vs, syntax=f"talos {where}")
        else:
            c.gaps.append(f"not read: Talos {where} entry at {c.file}:{_line(k)} (value is not a string)")
    return True


def _pod_specs(node: Node, path: str = "", out: list | None = None, seen: set | None = None) -> list:
    out = [] if out is None else out
    seen = set() if seen is None else seen
    if id(node) in seen:
        return out
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        if any(isinstance(_get(node, k), yaml.SequenceNode) for k in ("containers", "initContainers")):
            out.append((path, node))
            return out
        for k, v in node.value:
            _pod_specs(v, f"{path}.{_scalar(k)}" if path else str(_scalar(k)), out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _pod_specs(v, f"{path}[{i}]", out, seen)
    return out


# libyaml's parser when PyYAML was built with it (the wheels are): the same nodes and marks, ~5x faster
# than the pure-Python composer, which was half of a 600-file lint (docs/benchmarks.md). Its composer
# recurses in C without Python's recursion limit, so a hostile document nested ~100,000 deep crashes the
# process (SIGSEGV, measured). Nesting depth is at most the longest line (indentation plus compact "- - -"
# markers) plus the flow brackets; documents that could be deeper than _C_DEPTH_LIMIT (10,000 levels were
# measured safe) go to the pure-Python loader, which stops with RecursionError.
_C_LOADER = getattr(yaml, "CSafeLoader", None)
_C_DEPTH_LIMIT = 4000


def _loader_for(text: str) -> type:
    if _C_LOADER is None:
        return yaml.SafeLoader
    bound = text.count("[") + text.count("{")
    if bound < _C_DEPTH_LIMIT:
        bound += max(map(len, text.splitlines()), default=0)
    return _C_LOADER if bound < _C_DEPTH_LIMIT else yaml.SafeLoader


def compose_documents(text: str, file: str) -> list[Node]:
    try:
        return [d for d in yaml.compose_all(text, Loader=_loader_for(text)) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StructuredError(f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise StructuredError("YAML nested too deeply") from None


def parse_structured(text: str, file: str, syntax: str = "yaml") -> list[ConfigUnit]:
    """One unit per pod spec / compose service; everything else in the file forms one more unit."""
    try:
        return _parse_structured(text, file, syntax)
    except RecursionError:
        raise StructuredError("nested too deeply") from None


def _parse_structured(text: str, file: str, syntax: str) -> list[ConfigUnit]:
    docs = compose_documents(text, file)
    units: list[ConfigUnit] = []
    rest = _Collector(text, file, syntax)
    for doc in docs:
        kind, name = _scalar(_get(doc, "kind")), _scalar(_get(_get(doc, "metadata"), "name"))
        talos = _Collector(text, file, "talos")
        if _talos(doc, talos):
            units.append(talos.unit(f"{file}#{kind or 'machine'}"))
            continue
        pods = _pod_specs(doc)
        for path, spec in pods:
            c = _Collector(text, file, "kubernetes")
            c.pod(spec)
            shared = tuple(
                ns for ns, key in (("net", "hostNetwork"), ("ipc", "hostIPC")) if _scalar(_get(spec, key)) == "true"
            )
            label = f"{kind}/{name}" if kind and name else (path or "pod")
            if len(pods) > 1 and kind:
                label += f" ({path})"
            units.append(c.unit(f"{file}#{label}", host_namespaces=shared))
            rest.seen |= c.seen | {id(spec)}
        services = _get(doc, "services")
        if isinstance(services, yaml.MappingNode) and not pods:
            for k, svc in services.value:
                sysctls = _get(svc, "sysctls")
                if sysctls is None:
                    continue
                c = _Collector(text, file, "docker-compose")
                c.compose_sysctls(sysctls)
                units.append(c.unit(f"{file}#services.{_scalar(k)}"))
                rest.seen.add(id(sysctls))
        if kind and not pods:
            c = _Collector(text, file, syntax)
            c.seen = rest.seen
            c.walk(doc)
            if c.assignments or c.problems or c.gaps:
                units.append(c.unit(f"{file}#{kind}/{name or '?'}"))
        elif not pods:
            rest.walk(doc)
    if rest.assignments or rest.problems or rest.gaps or not units:
        units.insert(0, rest.unit(file))
    return units


def json_as_yaml(text: str) -> str:
    """JSON is YAML except that YAML forbids tabs as indentation; outside strings a tab is just a
    blank in JSON, and inside strings it must be escaped, so swapping tabs keeps every offset."""
    try:
        json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None  # invalid JSON raises ValueError itself
    return text.replace("\t", " ")
