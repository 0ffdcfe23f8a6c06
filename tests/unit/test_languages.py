"""The language table: detection from paths and shebangs, and resolution of what users type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidx_daemon.languages import (
    LANGUAGES,
    TEXT,
    UnknownLanguageError,
    language_for_path,
    resolve_languages,
)

REQUIRED = (
    "python", "javascript", "typescript", "c", "cpp", "csharp", "go", "rust", "java", "kotlin",
    "swift", "ruby", "php", "shell", "sql", "html", "css", "scss", "markdown", "json", "yaml",
    "toml", "xml", "lua", "perl", "r", "scala", "dart", "haskell", "elixir", "erlang", "clojure",
    "ocaml", "fsharp", "vue", "svelte", "dockerfile", "makefile", "cmake", "protobuf", "graphql",
    "hcl", "powershell", "objective-c", "zig", "nim", "julia", "groovy", "restructuredtext", "text",
)


def test_table_covers_the_common_languages_with_lowercase_names() -> None:
    assert set(REQUIRED) <= set(LANGUAGES)
    assert all(name == name.lower() and name.strip() == name for name in LANGUAGES)
    assert list(LANGUAGES) == sorted(LANGUAGES), "kept alphabetical for --help"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("main.py", "python"),
        ("pkg/stubs/mod.pyi", "python"),
        ("SRC/LEGACY.PY", "python"),
        ("web/app.jsx", "javascript"),
        ("web/types.d.ts", "typescript"),
        ("lib/vector.hpp", "cpp"),
        ("lib/vector.h", "c"),
        ("Program.cs", "csharp"),
        ("cmd/server/main.go", "go"),
        ("src/lib.rs", "rust"),
        ("build.gradle", "groovy"),
        ("main.tf", "hcl"),
        ("scripts/deploy.sh", "shell"),
        ("README.md", "markdown"),
        ("docs/index.rst", "restructuredtext"),
        ("notes.txt", "text"),
        ("Dockerfile", "dockerfile"),
        ("deploy/Dockerfile.prod", "dockerfile"),
        ("api.Dockerfile", "dockerfile"),
        ("Makefile", "makefile"),
        ("third_party/Makefile.in", "makefile"),
        ("CMakeLists.txt", "cmake"),
        ("sub/CMakeLists.txt", "cmake"),
        ("other.txt", "text"),
        ("home/.bashrc", "shell"),
        ("Gemfile", "ruby"),
        ("Jenkinsfile", "groovy"),
        ("tools/BUILD.bazel", "starlark"),
        ("Makefile.py", "python"),  # a real extension beats a name prefix
    ],
)
def test_language_from_name_and_extension(path: str, expected: str) -> None:
    assert language_for_path(path) == expected


@pytest.mark.parametrize("path", ["LICENSE", "data.unknownext", ".gitignore", "dir.d/noext", "build"])
def test_unrecognised_names_give_none(path: str) -> None:
    assert language_for_path(path) is None


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        ("#!/usr/bin/env python3", "python"),
        ("#!/usr/bin/python3.11 -u", "python"),
        ("#! /bin/bash -e", "shell"),
        ("#!/bin/sh", "shell"),
        ("#!/usr/bin/env -S node --no-warnings", "javascript"),
        ("#!/usr/bin/env PYTHONPATH=. python", "python"),
        ("#!/usr/bin/env ruby", "ruby"),
        ("#!/usr/local/bin/perl -w", "perl"),
        ("#!/usr/bin/env Rscript", "r"),
        ("#!/usr/bin/env deno run", "typescript"),
        ("#!/usr/bin/env", None),
        ("#!", None),
        ("#!/usr/bin/some-unknown-tool", None),
        ("import os", None),
    ],
)
def test_shebang_names_the_language_of_extensionless_scripts(first_line: str, expected: str | None) -> None:
    assert language_for_path("bin/tool", first_line) == expected


def test_shebang_is_not_consulted_when_the_name_decides() -> None:
    assert language_for_path("notes.txt", "#!/usr/bin/env python3") == "text"
    assert language_for_path("Makefile", "#!/bin/sh") == "makefile"


def test_every_extension_and_file_name_maps_back_to_its_language() -> None:
    for language in LANGUAGES.values():
        for extension in language.extensions:
            assert extension == extension.lower()
            assert language_for_path(f"some/file.{extension}") == language.name, extension
        for name in language.filenames:
            assert language_for_path(f"some/{name}") == language.name, name


def test_every_alias_resolves_to_its_own_language() -> None:
    for language in LANGUAGES.values():
        for alias in language.aliases:
            assert resolve_languages([alias]) == {language.name}, alias


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (["python"], {"python"}),
        (["PY", ".Py", "py3"], {"python"}),
        (["js", "ts", "c++", "golang", "sh", "bash"], {"javascript", "typescript", "cpp", "go", "shell"}),
        ([".rs", "rs"], {"rust"}),
        (["C#", "cs"], {"csharp"}),
        (["  yml "], {"yaml"}),
        (["terraform", "tf"], {"hcl"}),
        (["h"], {"c"}),
        (["text"], {TEXT}),
        ([], set()),
    ],
)
def test_resolve_accepts_names_aliases_and_extensions(typed: list[str], expected: set[str]) -> None:
    assert resolve_languages(typed) == frozenset(expected)


def test_unknown_language_lists_close_matches_on_one_line() -> None:
    with pytest.raises(UnknownLanguageError) as caught:
        resolve_languages(["python", "pyhton"])
    error = caught.value
    assert isinstance(error, ValueError)
    assert str(error) == "unknown language 'pyhton' (did you mean: python?)"
    assert error.suggestions == ("python",)
    assert error.value == "pyhton"


def test_suggestions_are_canonical_names() -> None:
    with pytest.raises(UnknownLanguageError) as caught:
        resolve_languages(["typescrpt"])
    assert caught.value.suggestions[0] == "typescript"
    assert all(s in LANGUAGES for s in caught.value.suggestions)


@pytest.mark.parametrize("typed", ["zzqqxx", "", "   ", ".", ".nosuchext"])
def test_unknown_without_close_matches(typed: str) -> None:
    with pytest.raises(UnknownLanguageError) as caught:
        resolve_languages([typed])
    assert str(caught.value).startswith(f"unknown language {typed!r}")
    assert "\n" not in str(caught.value)


_SPELLINGS = sorted(
    {name for name in LANGUAGES}
    | {alias for lang in LANGUAGES.values() for alias in lang.aliases}
    | {ext for lang in LANGUAGES.values() for ext in lang.extensions}
    | {"." + ext for lang in LANGUAGES.values() for ext in lang.extensions}
)


@given(st.lists(st.sampled_from(_SPELLINGS), max_size=5), st.booleans())
def test_any_known_spelling_in_any_case_resolves_to_known_names(typed: list[str], upper: bool) -> None:
    typed = [t.upper() if upper else t for t in typed]
    resolved = resolve_languages(typed)
    assert resolved <= set(LANGUAGES)
    assert len(resolved) <= len(typed)
