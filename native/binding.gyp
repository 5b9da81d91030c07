{
  "targets": [
    {
      "target_name": "weft_engine",
      "sources": [
        "src/addon.c",
        "src/engine.c",
        "src/tun.c",
        "src/underlay.c",
        "src/routes.c",
        "src/inside.c",
        "src/outside.c",
        "src/icmp.c",
        "src/io.c",
        "src/notify.c",
        "src/fdpass.c",
        "src/addon_fdpass.c",
        "src/wireguard.c",
        "src/checksum.c"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
