"""Connection settings for ``--bootstrap-server``: address checks, the properties file, precedence."""

import pytest

from logbroker import errors
from logbroker.remote.connect import ENV_BOOTSTRAP_SERVERS, client_config, read_properties, resolve_bootstrap


def test_bootstrap_comes_from_the_flag_then_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_BOOTSTRAP_SERVERS, "env-host:9092")
    assert resolve_bootstrap("flag-host:1, other:2") == "flag-host:1,other:2"
    assert resolve_bootstrap(None) == "env-host:9092"
    monkeypatch.delenv(ENV_BOOTSTRAP_SERVERS)
    assert resolve_bootstrap(None) is None


@pytest.mark.parametrize("bad", ["localhost", "host:", ":9092", "host:port", "host:70000", "a:1,,b:2"])
def test_a_malformed_bootstrap_address_is_named(bad):
    with pytest.raises(errors.InvalidConfigError, match="is not HOST:PORT"):
        resolve_bootstrap(bad)


def test_command_config_is_read_like_kafkas_properties_and_wins(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text("# TLS\n! also a comment\n\nsecurity.protocol=SSL\nsasl.mechanism: PLAIN\n"
                    "sasl.jaas.config=user=a password=b=c\n")
    config = client_config("h:1", str(path), **{"security.protocol": "PLAINTEXT", "linger.ms": 5})
    assert config == {"bootstrap.servers": "h:1", "security.protocol": "SSL", "linger.ms": 5,
                      "sasl.mechanism": "PLAIN", "sasl.jaas.config": "user=a password=b=c"}


def test_a_bad_properties_line_names_file_and_line(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text("security.protocol=SSL\njust words\n")
    with pytest.raises(errors.InvalidConfigError, match=r"client\.properties:2: 'just words'"):
        read_properties(str(path))


def test_a_missing_properties_file_is_one_line(tmp_path):
    with pytest.raises(errors.ClusterError, match="--command-config .*missing.properties"):
        read_properties(str(tmp_path / "missing.properties"))


def test_local_commands_never_load_the_kafka_client(tmp_path):
    import os
    import subprocess
    import sys
    show = "import sys; print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    for args in (["topics", "list"], ["groups", "list"], ["consume", "t", "--timeout-ms", "1"]):
        code = (f"import sys, atexit; sys.argv = ['logbroker', *{args!r}]; atexit.register(lambda: exec({show!r})); "
                "from logbroker.cli import main; main()")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "LOGBROKER_DATA_DIR": str(tmp_path)})
        loaded = done.stderr.split()
        assert "logbroker.errors" in loaded and "confluent_kafka" not in loaded, (args, done.stderr[-500:])
        assert not any(m.startswith("logbroker.remote.cluster") for m in loaded), args
