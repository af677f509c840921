"""The package's public names are deliberate: changing them is an API change."""

import agent


def test_exported_members():
    assert sorted(agent.__all__) == sorted([
        "AgentCheck", "AgentError", "CheckContext", "CheckError", "CheckResult", "CheckTimeout",
        "ConfigError", "ExportError", "InstanceConfig", "Kind", "NotifyError", "Sample", "Status",
        "StoreError", "UnknownCheckError", "__version__",
    ])
    for name in agent.__all__:
        assert hasattr(agent, name)


def test_cli_help_for_every_command(capsys):
    import pytest

    from agent.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        with pytest.raises(SystemExit) as info:
            subparser.parse_args(["--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "usage:" in out and len(out) > 80, name
