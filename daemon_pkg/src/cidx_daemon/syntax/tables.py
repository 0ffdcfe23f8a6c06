"""Per-language node-type tables: which syntax nodes define a name, of what kind, and how to
read the name.

One table serves every grammar: tree-sitter grammars name their nodes consistently enough
(``function_definition``, ``class_declaration``, ``struct_item``...) that a node type means
the same thing wherever it occurs, and the few that differ are handled by name below. A
node type missing here costs a symbol, never text: the cutter still cuts at syntax.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from cidx_daemon.index.chunking import Symbol

__all__ = ["CONTAINERS", "DEFINITIONS", "Symbol", "definition_name", "is_lead_in", "prunable"]

#: Node type -> symbol kind.
DEFINITIONS: dict[str, str] = {
    # functions and methods
    "function_definition": "function", "function_declaration": "function", "function_item": "function",
    "generator_function_declaration": "function", "function_signature_item": "function",
    "method_definition": "method", "method_declaration": "method", "method": "method",
    "singleton_method": "method", "method_signature": "method", "abstract_method_signature": "method",
    "constructor_declaration": "constructor", "preproc_function_def": "macro", "preproc_def": "macro",
    "macro_definition": "macro",
    # types and namespaces
    "class_definition": "class", "class_declaration": "class", "abstract_class_declaration": "class",
    "class_specifier": "class", "class": "class", "object_declaration": "class", "object_definition": "class",
    "struct_item": "struct", "struct_specifier": "struct", "struct_declaration": "struct",
    "union_item": "union", "union_specifier": "union",
    "enum_item": "enum", "enum_declaration": "enum", "enum_specifier": "enum",
    "trait_item": "trait", "trait_declaration": "trait", "trait_definition": "trait",
    "interface_declaration": "interface", "protocol_declaration": "interface",
    "annotation_type_declaration": "interface", "record_declaration": "record",
    "type_alias_declaration": "type", "type_item": "type", "type_definition": "type", "type_spec": "type",
    "delegate_declaration": "type",
    "module": "module", "mod_item": "module", "internal_module": "namespace",
    "namespace_definition": "namespace", "namespace_declaration": "namespace",
    "file_scoped_namespace_declaration": "namespace",
    # values (kept only outside function bodies, see ``chunker``)
    "const_item": "constant", "static_item": "variable", "const_spec": "constant", "var_spec": "variable",
    "variable_declarator": "variable", "assignment": "variable", "const_element": "constant",
    "property_element": "property", "property_declaration": "property", "field_definition": "field",
    "public_field_definition": "field",
}

#: Value definitions that stay values whatever they hold (a ``variable_declarator`` holding an
#: arrow function is a function): inside a function body they define nothing worth a symbol,
#: so their names are not even read (most assignments are in function bodies).
PLAIN_VALUES = frozenset(t for t, kind in DEFINITIONS.items() if kind in ("constant", "variable", "property",
                                                                        "field")) - {
    "variable_declarator", "const_element", "property_element"}

#: Kinds whose body holds further definitions named under them (``Class.method``).
CONTAINERS = frozenset({"class", "struct", "union", "enum", "trait", "interface", "record", "module",
                        "namespace", "impl", "function", "method", "constructor"})
TYPE_KINDS = frozenset({"class", "struct", "union", "enum", "trait", "interface", "record", "impl"})
VALUE_KINDS = frozenset({"constant", "variable", "property", "field"})
FUNCTION_KINDS = frozenset({"function", "method", "constructor"})

_NAME_TYPES = frozenset({"identifier", "type_identifier", "simple_identifier", "constant", "name",
                         "property_identifier", "field_identifier", "namespace_identifier", "word",
                         "variable_name", "scope_resolution", "qualified_identifier", "dotted_name",
                         "namespace_name", "destructor_name", "operator_name", "string"})
_DECLARATOR_HOLDERS = frozenset({"function_declarator", "pointer_declarator", "reference_declarator",
                                 "parenthesized_declarator", "array_declarator"})
#: Expression-level subtrees: no definition worth a symbol lives inside them, and skipping
#: them keeps the walk to a small share of the tree's nodes.
_PRUNE = re.compile(r"string|comment|literal|argument|parameter|call|binary|unary|subscript|regex|"
                    r"number|^identifier$|type_annotation|jsx|heredoc|condition|_type$|arguments")
_LEAD_IN = re.compile(r"comment|^decorator$|^attribute_item$|^attribute_list$|^annotation$|"
                      r"^marker_annotation$|^inner_attribute_item$")
_SEPARATOR = re.compile(r"::|\.|->|\\|:")


@lru_cache(maxsize=4096)
def prunable(node_type: str) -> bool:
    return node_type != "expression_statement" and bool(_PRUNE.search(node_type))


@lru_cache(maxsize=4096)
def is_lead_in(node_type: str) -> bool:
    """Comments, decorators and attributes, which belong to the definition below them."""
    return bool(_LEAD_IN.search(node_type))


def _text(node: Any) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _declarator_name(node: Any) -> Any:
    """C/C++: the identifier at the bottom of a (function, pointer...) declarator chain."""
    seen = 0
    while node is not None and node.type in _DECLARATOR_HOLDERS and seen < 16:
        node = node.child_by_field_name("declarator")
        seen += 1
    return node


def _first_name_child(node: Any) -> Any:
    for child in node.named_children:
        if child.type in _NAME_TYPES:
            return child
    return None


def definition_name(node: Any) -> tuple[str, str, str, int] | None:
    """(name, qualifier, kind, 0-based row of the name) for a definition node, None when it
    defines nothing nameable here (an anonymous class, a destructuring assignment...).

    The qualifier is what the name itself says of its owner (``void C::m()`` -> ``C``,
    ``class A::B`` -> ``A``, ``func (s *S) M()`` -> ``S``), joined to the structural parent.
    """
    kind = DEFINITIONS.get(node.type)
    if kind is None:
        return None
    t = node.type
    name_node: Any = None
    qualifier = ""
    if t in ("function_definition", "type_definition") and node.child_by_field_name("declarator") is not None:
        name_node = _declarator_name(node.child_by_field_name("declarator"))
    elif t == "assignment":
        name_node = node.child_by_field_name("left")
        if name_node is None or name_node.type not in ("identifier", "constant"):
            return None
    elif t in ("variable_declarator", "const_element", "property_element"):
        name_node = node.child_by_field_name("name") or _first_name_child(node)
        if name_node is None or name_node.type not in ("identifier", "name", "variable_name"):
            return None
        value = node.child_by_field_name("value")
        if value is not None and value.type in ("arrow_function", "function_expression", "function",
                                                "generator_function"):
            kind = "function"
    elif t == "type_spec":
        name_node = node.child_by_field_name("name")
        inner = node.child_by_field_name("type")
        if inner is not None and inner.type in ("struct_type", "interface_type"):
            kind = inner.type.removesuffix("_type")
    elif t == "method_declaration" and node.child_by_field_name("receiver") is not None:
        name_node = node.child_by_field_name("name")
        receiver = node.child_by_field_name("receiver")
        types = [m for m in re.findall(r"[A-Za-z_]\w*", _text(receiver))]
        qualifier = types[-1] if types else ""
    else:
        name_node = node.child_by_field_name("name") or _first_name_child(node)
    if name_node is None:
        return None
    raw = _text(name_node).strip().strip("'\"`").lstrip("$")
    if not raw:
        return None
    parts = [p for p in _SEPARATOR.split(raw) if p]
    if not parts:
        return None
    name = parts[-1].strip()
    if not re.fullmatch(r"[\w$~!?=<>+\-*/%&|^\[\]]+", name):
        return None
    qualifier = ".".join(p.strip() for p in parts[:-1]) or qualifier
    if kind in VALUE_KINDS and name.isupper() and len(name) > 1:
        kind = "constant"
    return name, qualifier, kind, name_node.start_point.row


def impl_name(node: Any) -> str:
    """Rust ``impl<T> Trait for Type<T>``: the type its methods belong to."""
    type_node = node.child_by_field_name("type")
    names = re.findall(r"[A-Za-z_]\w*", _text(type_node).split("<", 1)[0])
    return names[-1] if names else ""
