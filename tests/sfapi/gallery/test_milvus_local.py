"""The local Milvus server's pieces that need no server: config editing and port choice."""
from __future__ import annotations

import socket

from sfapi.gallery.milvus_server import MilvusPorts, yaml_set

TEMPLATE = """etcd:
  endpoints: localhost:2379 # the client port
  use:
    embed: true
proxy:
  port: 19530
  ip: # empty: the first unicast address
"""


def test_yaml_set_rewrites_inserts_and_appends() -> None:
    out = yaml_set(TEMPLATE, {"etcd.config.path": "/x/etcd.yaml", "etcd.use.embed": False, "proxy.ip": "127.0.0.1",
                              "proxy.port": 21000, "queryCoord.checkInterval": 100})
    assert out == """etcd:
  config:
    path: /x/etcd.yaml
  endpoints: localhost:2379 # the client port
  use:
    embed: false
proxy:
  port: 21000
  ip: 127.0.0.1
queryCoord:
  checkInterval: 100
"""


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = list(vars(MilvusPorts.free()).values())
    assert len(set(ports)) == len(ports) == 12
    for port in ports:
        assert 20000 <= port < 32000
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
