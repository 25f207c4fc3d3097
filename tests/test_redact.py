"""What the report publishes of a config: every URL without its credentials, everything else as it was."""

import pytest

from epochbench.redact import redact_credentials


@pytest.mark.parametrize("url, shown", [
    ("https://user:pass@mirror.example/pets.tgz", "https://***@mirror.example/pets.tgz"),
    ("https://ghp_token@github.com/org/data.tgz", "https://***@github.com/org/data.tgz"),
    ("ftp://user:p@ss@host:21/a.zip", "ftp://***@host:21/a.zip"),  # an unescaped @ in the password
    ("https://host/path?contact=a@b.example", "https://host/path?contact=a@b.example"),  # no userinfo
    ("file:///data/pets.tgz", "file:///data/pets.tgz"),
    ("mirror at https://u:p@h/x and http://v:q@k/y", "mirror at https://***@h/x and http://***@k/y"),
])
def test_credentials_in_urls_are_replaced(url, shown):
    assert redact_credentials(url) == shown


def test_a_config_keeps_everything_but_the_credentials():
    config = {"experiment": "pets", "seeds": [1, 2], "max_epochs": 10, "augment": True, "source": None,
              "dataset": {"name": "pets", "url": "https://me:secret@mirror.example/pets.tgz", "classes": ["a", "b"]}}
    shown = redact_credentials(config)
    assert shown == dict(config, dataset=dict(config["dataset"], url="https://***@mirror.example/pets.tgz"))
    assert config["dataset"]["url"] == "https://me:secret@mirror.example/pets.tgz"  # the run's own config is untouched
