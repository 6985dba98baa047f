{
  "targets": [{
    "target_name": "tcp_info",
    "sources": ["tcp_info.c"],
    "conditions": [["OS!='linux'", { "type": "none" }]]
  }]
}
