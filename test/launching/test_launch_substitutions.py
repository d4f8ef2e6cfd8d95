"""The substitution grammar and launch's command-line splitting."""

from dataclasses import dataclass, field

import pytest

from rlvla_ros.launching.substitutions import (
    Substitution,
    SubstitutionError,
    parse_template,
    perform,
    split_command_line,
)


@dataclass
class _Context:
    configurations: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    file_dir: str = "/launch"


def test_parse_keeps_text_and_nested_substitutions():
    template = parse_template("pre $(var $(var key)_x 'de fault') post")
    assert template.parts == (
        "pre ",
        Substitution("var", (
            (Substitution("var", (("key",),)), "_x"),
            ("de fault",),
        )),
        " post",
    )
    assert not template.is_text and parse_template("plain 'quoted' text").is_text


@pytest.mark.parametrize(("source", "expected"), [
    (r"a\$b", "a$b"),
    (r"a\\b", "a\\b"),
    ("it's \"fine\"", "it's \"fine\""),
    ("$(var name)/$(env HOME)", "robot//home/u"),
    ("$(env MISSING 'x y')", "x y"),
    ('$(var missing "$(var name)!")', "robot!"),
    ("$(dirname)/x.yaml", "/launch/x.yaml"),
    ("", ""),
])
def test_perform(source, expected):
    context = _Context({"name": "robot"}, {"HOME": "/home/u"})
    assert perform(parse_template(source), context) == expected


@pytest.mark.parametrize(("source", "message"), [
    ("$(var  name)", "expected a substitution argument"),
    ("$(var name", "expected '\\)'"),
    ("$(1var)", "expected a substitution name"),
    ("$(var 'open)", "unterminated ' quote"),
    ("100$", "'\\$' must start a substitution"),
    ("$(anon x)", "unsupported substitution '\\$\\(anon \\.\\.\\.\\)'"),
    ("$(dirname x)", "expects 0 argument"),
])
def test_syntax_errors(source, message):
    with pytest.raises(SubstitutionError, match=message):
        parse_template(source)


def test_missing_configuration_is_an_error():
    with pytest.raises(SubstitutionError, match="launch configuration 'nope' does not exist"):
        perform(parse_template("$(var nope)"), _Context())


@pytest.mark.parametrize(("source", "expected"), [
    ("-a 'b c' d", ["-a", "b c", "d"]),
    ("--config $(var dir)/a.yaml --n 1", ["--config", "/my dir/a.yaml", "--n", "1"]),
    ("$(var dir) $(var dir)", ["/my dir", "/my dir"]),
    ("x$(var dir)y", ["x/my diry"]),
    ("", []),
])
def test_split_command_line_splits_text_but_never_substitution_values(source, expected):
    assert split_command_line(parse_template(source), _Context({"dir": "/my dir"})) == expected
